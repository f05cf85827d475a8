using System.CommandLine;
using PeftWorkbench.Training;
using PeftWorkbench.Bench;
using PeftWorkbench.Peft;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;
using PeftApi = PeftWorkbench.Peft.Peft;

namespace PeftWorkbench.Cli.Commands;

/// <summary>PEFT methods: `peft methods`, `peft params`, `peft bench methods`.</summary>
public static class PeftCommand
{
    /// <summary>Adds `methods` and `params`, and `methods` under an existing `bench` command (or a new one).</summary>
    public static void AddTo(RootCommand root)
    {
        root.Subcommands.Add(Methods());
        root.Subcommands.Add(Params());
        var bench = root.Subcommands.FirstOrDefault(c => c.Name == "bench");
        if (bench is null)
        {
            bench = new Command("bench", "Benchmarks that print figures (never timed tests).");
            root.Subcommands.Add(bench);
        }
        bench.Subcommands.Add(BenchMethods());
    }

    static Command Methods()
    {
        var id = new Argument<string?>("method") { Description = "Show one method (id or alias); all when omitted.", Arity = ArgumentArity.ZeroOrOne };
        var cmd = new Command("methods", "The study's PEFT methods: where each sits, its init, its options (the study's keys) and grid.") { id };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var methods = r.GetValue(id) is string one ? new[] { MethodRegistry.Get(one) } : MethodRegistry.All;
            foreach (var m in methods)
            {
                var defaults = m.Defaults().ToHyperparameters();
                Console.WriteLine($"{m.Id,-15} {m.Name}{(m.Mergeable ? "  [mergeable]" : "")}{(m.IdentityAtInit ? "  [output unchanged at attach]" : "")}");
                Console.WriteLine($"  where:    {m.Where}");
                Console.WriteLine($"  init:     {m.Init}");
                Console.WriteLine($"  strength: {m.StrengthRule}");
                foreach (var o in m.Options)
                    Console.WriteLine($"  --hp {o.Key}={OptionValues.Format(defaults[o.Key])}".PadRight(40) +
                        $" {o.Description}{(o.Grid is null ? "" : $"; grid {{{string.Join(", ", o.Grid.Select(OptionValues.Format))}}}")}");
                Console.WriteLine();
            }
            var aliases = string.Join(", ", MethodRegistry.Aliases.Select(a => $"{a.Key} = {a.Value}"));
            Console.WriteLine($"aliases: {aliases}; training keys (not method options; peft train --hp takes them as its learning rate and weight decay): {string.Join(", ", MethodRegistry.TrainingKeys)}");
            return 0;
        }));
        return cmd;
    }

    static Option<string[]> HpOption() => new("--hp")
    {
        Description = "Hyperparameters as key=value with the study's keys (repeat, or several after one --hp).",
        AllowMultipleArgumentsPerToken = true,
    };

    static Command Params()
    {
        var preset = new Option<string>("--preset") { Description = "ViT preset: " + string.Join(", ", VitConfig.Presets.Keys), DefaultValueFactory = _ => "vit-b16" };
        var method = new Option<string>("--method") { Description = "Method id (the study's: lora, ssf, ...) or alias.", Required = true };
        var hp = HpOption();
        var cmd = new Command("params", "Prints trainable_params_excl_head=<N> for a method on a preset (the study's \"params\" column).") { preset, method, hp };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            try
            {
                var config = VitConfig.Preset(r.GetValue(preset)!);
                var options = MethodRegistry.Create(r.GetValue(method)!, MethodRegistry.ParsePairs(r.GetValue(hp) ?? Array.Empty<string>()), config);
                using var vit = new VisionTransformer(config, seed: 0);
                using var model = PeftApi.Attach(vit, options);
                Console.WriteLine($"trainable_params_excl_head={model.TrainableParameterCountExcludingHead}");
                return 0;
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"peft params: {e.Message}");
                return 2;
            }
        }));
        return cmd;
    }

    static Command BenchMethods()
    {
        var preset = new Option<string>("--preset") { Description = "ViT preset (a small CPU one).", DefaultValueFactory = _ => "mini" };
        var steps = new Option<int>("--steps") { Description = "Timed training steps per method and round (after 2 warm-up steps).", DefaultValueFactory = _ => 10 };
        var rounds = new Option<int>("--rounds") { Description = "Rounds over all methods; each method's best round is reported (other load on the machine only slows rounds down).", DefaultValueFactory = _ => 3 };
        var batch = new Option<int>("--batch") { Description = "Batch size.", DefaultValueFactory = _ => 64 };
        var threads = new Option<int>("--threads") { Description = "torch threads (0: leave the default).", DefaultValueFactory = _ => 0 };
        var only = new Option<string[]>("--methods") { Description = "Methods to run (default: all 16; full is always run for the ratio).", AllowMultipleArgumentsPerToken = true };
        var cmd = new Command("methods", "Training-step images/s of every method (AdamW on random data) and the ratio to full fine-tuning, in one run.")
            { preset, steps, rounds, batch, threads, only };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            if (r.GetValue(threads) is > 0 and var t) ThreadBudget.Pin(t);
            var config = VitConfig.Preset(r.GetValue(preset)!);
            int n = r.GetValue(steps), b = r.GetValue(batch), rs = r.GetValue(rounds);
            if (n < 1 || b < 1 || rs < 1) { Console.Error.WriteLine("peft bench methods: --steps, --rounds and --batch must be at least 1"); return 2; }
            var ids = r.GetValue(only) is { Length: > 0 } chosen
                ? chosen.SelectMany(c => c.Split(',', StringSplitOptions.RemoveEmptyEntries)).Select(c => MethodRegistry.Get(c.Trim()).Id).Prepend("full").Distinct().ToList()
                : MethodRegistry.All.Select(m => m.Id).OrderBy(id => id == "full" ? 0 : 1).ToList();
            Console.WriteLine($"bench methods: {config.Name} (dim {config.EmbedDim}, depth {config.Depth}, {config.ImageSize} px, patch {config.PatchSize}), " +
                $"batch {b}, {n} timed steps x {rs} rounds (best kept), {torch.get_num_threads()} torch threads, AdamW, default options");
            var runs = ids.Select(id => new MethodRun(config, id, b)).ToList();
            try
            {
                foreach (var run in runs) run.Warmup();
                for (int round = 0; round < rs; round++)
                    foreach (var run in runs) run.Time(n);
                double full = runs[0].Best;
                Console.WriteLine($"  {"method",-15} {"trainable",12} {"img/s",8} {"vs full",8}  frozen tensors with a gradient");
                foreach (var run in runs)
                    Console.WriteLine($"  {run.Id,-15} {run.TrainableExclHead,12:N0} {run.Best,8:F0} {run.Best / full,7:F2}x  {(run.FrozenWithGrad == 0 ? "none" : run.FrozenWithGrad + " (BUG)")}");
            }
            finally { foreach (var run in runs) run.Dispose(); }
            return 0;
        }));
        return cmd;
    }
}
