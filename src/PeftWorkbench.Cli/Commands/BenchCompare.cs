using System.CommandLine;
using PeftWorkbench.Training;
using PeftWorkbench.Bench;
using PeftWorkbench.Vit;
using TorchSharp;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft bench`: TorchSharp (in-process) against the PyTorch reference (environment/reference/bench.py)
/// on one preset, in one run: inference, full FT and one method of each family, peak RSS, and the ratios.</summary>
public static class BenchCompare
{
    /// <summary>Gives the existing `bench` command (TrainCommand makes it) its own action; its subcommands stay.</summary>
    public static void AddTo(RootCommand root)
    {
        var bench = root.Subcommands.FirstOrDefault(c => c.Name == "bench")
            ?? throw new InvalidOperationException("BenchCompare.AddTo: add the `bench` command first.");
        var preset = new Option<string>("--preset") { Description = "ViT preset (mini: the embedded default; small-32: ViT-S-sized).", DefaultValueFactory = _ => "mini" };
        var batch = new Option<int>("--batch") { Description = "Batch size.", DefaultValueFactory = _ => 64 };
        var steps = new Option<int>("--steps") { Description = "Timed steps per workload and round (after 2 warm-up steps).", DefaultValueFactory = _ => 10 };
        var rounds = new Option<int>("--rounds") { Description = "Rounds over all workloads; each one's best round is kept.", DefaultValueFactory = _ => 3 };
        var threads = new Option<int>("--threads") { Description = "torch threads on both sides (0: ours at its default, PyTorch's timed at 1 and 2, the faster kept).", DefaultValueFactory = _ => 0 };
        var noReference = new Option<bool>("--no-reference") { Description = "Only our side." };
        var python = new Option<string>("--python") { Description = "The python that has torch (Debian's python3-torch).", DefaultValueFactory = _ => ReferenceBench.DefaultPython };
        var json = new Option<string?>("--json") { Description = "Also write the figures to this JSON file." };
        var bf16 = new Option<bool>("--bf16") { Description = "Also every workload in bf16 (ours: bf16 compute, float32 masters; PyTorch: autocast-bf16), " +
            "and a table of our best mode against both PyTorch modes with issue 16's targets." };
        foreach (var o in new Option[] { preset, batch, steps, rounds, threads, noReference, python, json, bf16 }) bench.Options.Add(o);
        bench.Description = "TorchSharp against PyTorch (environment/reference/bench.py): images/s for inference, a full-FT step and the steps of " +
            "LoRA, Houlsby adapter, VPT-Deep and BitFit, peak RSS, and the ratios; subcommands: other benchmarks.";
        bench.SetAction((r, cancel) => Cli.Guard(() =>
        {
            int b = r.GetValue(batch), n = r.GetValue(steps), rs = r.GetValue(rounds), t = r.GetValue(threads);
            if (b < 1 || n < 1 || rs < 1 || t < 0) { Console.Error.WriteLine("peft bench: --batch, --steps and --rounds must be at least 1, --threads at least 0"); return Task.FromResult(2); }
            VitConfig config;
            try
            {
                config = VitConfig.Preset(r.GetValue(preset)!);
                if (!r.GetValue(noReference)) ReferenceBench.ConfigJson(config); // refuse a shape the reference cannot build before timing anything
            }
            catch (ArgumentException e) { Console.Error.WriteLine($"peft bench: {e.Message}"); return Task.FromResult(2); }
            if (t > 0) ThreadBudget.Pin(t);
            var methods = r.GetValue(bf16) ? BenchMode.WithBf16(TorchSharpBench.Methods) : TorchSharpBench.Methods;
            Console.WriteLine($"peft bench: {config.Name} (dim {config.EmbedDim}, depth {config.Depth}, {config.NumHeads} heads, {config.ImageSize} px, patch {config.PatchSize}), " +
                $"batch {b}, {n} timed steps x {rs} rounds (best kept), AdamW lr 1e-3 wd 1e-4, default options; {Environment.ProcessorCount} CPUs");
            // The reference starts first (build, warm-up, its thread timing) and then times each workload right
            // after ours, so that both sides of a ratio see the same load from other work on the machine.
            ReferenceSession? session = null;
            if (!r.GetValue(noReference))
            {
                Console.WriteLine($"PyTorch reference ({r.GetValue(python)}): build and warm-up");
                session = ReferenceSession.Start(r.GetValue(python)!, ReferenceBench.FindScript(), config, methods, b, n, t,
                    line => Console.WriteLine("  " + line), cancel);
            }
            BenchComparison comparison;
            using (session)
            {
                Console.WriteLine($"TorchSharp ({torch.get_num_threads()} torch threads): build and warm-up, then rounds" +
                    (session is { Problem: null } ? ", each workload timed here and then at once in PyTorch" : ""));
                var ours = TorchSharpBench.Run(config, methods, b, n, rs, line => Console.WriteLine("  " + line), session);
                comparison = new BenchComparison(ours, session?.Finish());
            }
            Console.WriteLine();
            Console.Write(comparison.Table());
            if (comparison.BestModeTable() is { Length: > 0 } best) { Console.WriteLine(); Console.Write(best); }
            foreach (var w in comparison.Warnings()) Console.WriteLine("!! " + w);
            if (r.GetValue(json) is string path)
            {
                File.WriteAllText(path, comparison.ToJson() + "\n");
                Console.WriteLine($"wrote {path}");
            }
            // A count mismatch means the ratios compare different work: fail, so scripts notice.
            return Task.FromResult(comparison.CountMismatches.Count > 0 ? 1 : 0);
        }));
    }
}
