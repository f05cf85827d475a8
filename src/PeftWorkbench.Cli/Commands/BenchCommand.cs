using System.CommandLine;
using PeftWorkbench.Bench;
using PeftWorkbench.Training;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft bench` (TorchSharp against the PyTorch reference) and its in-process subcommands: train, protocol,
/// optimizer, methods. The benchmarks live in src/PeftWorkbench.Bench; BenchSweepCommand and BenchIoCommand add the rest.</summary>
public static class BenchCommand
{
    static Option<string> Preset(string byDefault) => new("--preset") { Description = "ViT preset.", DefaultValueFactory = _ => byDefault };
    static Option<int> Int(string name, string description, int byDefault) => new(name) { Description = description, DefaultValueFactory = _ => byDefault };
    static Option<int> Threads() => Int("--threads", "torch threads (0: leave the default).", 0);
    static void Pin(int threads) { if (threads > 0) ThreadBudget.Pin(threads); }

    public static Command Create()
    {
        var (preset, batch, steps, rounds, threads) = (Preset("mini"), Int("--batch", "Batch size.", 64), Int("--steps", "Timed steps per workload and round (after 2 warm-up steps).", 10),
            Int("--rounds", "Rounds over all workloads; each one's best round is kept.", 3), Threads());
        var noReference = new Option<bool>("--no-reference") { Description = "Only our side." };
        var python = new Option<string>("--python") { Description = "The python that has torch (Debian's python3-torch).", DefaultValueFactory = _ => ReferenceBench.DefaultPython };
        var json = new Option<string?>("--json") { Description = "Also write the figures to this JSON file." };
        var bf16 = new Option<bool>("--bf16") { Description = "Also every workload in bf16 (ours: bf16 compute, float32 masters; PyTorch: autocast-bf16)." };
        var bench = new Command("bench", "TorchSharp against PyTorch (environment/reference/bench.py): images/s for inference, a full-FT step and the steps of " +
            "LoRA, Houlsby adapter, VPT-Deep and BitFit, peak RSS, and the ratios; subcommands: other benchmarks.") { preset, batch, steps, rounds, threads, noReference, python, json, bf16 };
        bench.SetAction((r, cancel) => Cli.Guard(() =>
        {
            var c = BenchComparison.Measure(VitConfig.Preset(r.GetValue(preset)!), r.GetValue(batch), r.GetValue(steps), r.GetValue(rounds), r.GetValue(threads),
                r.GetValue(bf16), r.GetValue(noReference), r.GetValue(python)!, Console.WriteLine, cancel);
            foreach (var line in c.Report()) Console.WriteLine(line);
            if (r.GetValue(json) is string path) { File.WriteAllText(path, c.ToJson() + "\n"); Console.WriteLine($"wrote {path}"); }
            return c.CountMismatches.Count > 0 ? 1 : 0; // the ratios would compare different work: scripts must notice
        }));

        var (tPreset, tBatch, tThreads) = (Preset("mini"), Int("--batch", "Batch size.", 64), Threads());
        var longSteps = Int("--steps", "Full-FT steps for the memory check (RSS after 10 and after this many).", 1000);
        var train = new Command("train", "images/s for inference, a full-FT step and linear probing (cached vs full forward); RSS over a long run.") { tPreset, tBatch, longSteps, tThreads };
        train.SetAction((r, cancel) => Cli.Guard(() => { TrainBench.Run(VitConfig.Preset(r.GetValue(tPreset)!), r.GetValue(tBatch), r.GetValue(longSteps), r.GetValue(tThreads), Console.WriteLine, cancel); return 0; }));

        var (pPreset, pThreads) = (Preset("mini"), Threads());
        var method = new Option<string>("--method") { Description = "Method to time.", DefaultValueFactory = _ => "full" };
        var profile = new Option<string>("--profile") { Description = "smoke | default | paper", DefaultValueFactory = _ => "default" };
        var protocol = new Command("protocol", "Wall time of the VTAB-1K protocol (tune grid + final run) for one method on a toy task " +
            "with VTAB-1K split sizes (800/200/1000/2000, 10 classes) at the preset's image size.") { pPreset, method, profile, pThreads };
        protocol.SetAction((r, cancel) => Cli.Guard(() => { Pin(r.GetValue(pThreads)); ProtocolBench.Run(VitConfig.Preset(r.GetValue(pPreset)!), r.GetValue(method)!, r.GetValue(profile)!, Console.WriteLine, cancel); return 0; }));

        var (oPreset, oBatch, oThreads) = (Preset("mini"), Int("--batch", "Batch size.", 64), Threads());
        var oMethods = new Option<string>("--methods") { Description = "Comma-separated methods.", DefaultValueFactory = _ => "full,lora" };
        var oRounds = Int("--rounds", "Alternating rounds (per-tensor and flat each once per round).", 5);
        var optimizer = new Command("optimizer", "Flat AdamW against TorchSharp's per-tensor AdamW: zero_grad + step alone, and training " +
            "images/s through the trainer, in alternating rounds (medians).") { oPreset, oBatch, oMethods, oRounds, oThreads };
        optimizer.SetAction((r, cancel) => Cli.Guard(() =>
        {
            Pin(r.GetValue(oThreads));
            OptimizerBench.Print(VitConfig.Preset(r.GetValue(oPreset)!), Cli.Split(new[] { r.GetValue(oMethods)! }), r.GetValue(oBatch), r.GetValue(oRounds), Console.WriteLine, cancel);
            return 0;
        }));

        var (mPreset, mBatch, mThreads) = (Preset("mini"), Int("--batch", "Batch size.", 64), Threads());
        var (mSteps, mRounds) = (Int("--steps", "Timed training steps per method and round (after 2 warm-up steps).", 10), Int("--rounds", "Rounds over all methods; each method's best round is reported.", 3));
        var only = new Option<string[]>("--methods") { Description = "Methods to run (default: all 16; full is always run for the ratio).", AllowMultipleArgumentsPerToken = true };
        var methods = new Command("methods", "Training-step images/s of every method (AdamW on random data) and the ratio to full fine-tuning, in one run.")
            { mPreset, mSteps, mRounds, mBatch, mThreads, only };
        methods.SetAction(r => Cli.Guard(() =>
        {
            Pin(r.GetValue(mThreads));
            MethodsBench.Run(VitConfig.Preset(r.GetValue(mPreset)!), Cli.Split(r.GetValue(only)), r.GetValue(mBatch), r.GetValue(mSteps), r.GetValue(mRounds), Console.WriteLine);
            return 0;
        }));
        foreach (var sub in new[] { train, protocol, optimizer, methods }) bench.Subcommands.Add(sub);
        return bench;
    }
}
