using System.CommandLine;
using System.Diagnostics;
using PeftWorkbench.Data;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft train`: the study's protocol for one method on one task.</summary>
public static class TrainCommand
{
    /// <summary>The environment train and sweeps run in: the suites and the backbone factory.</summary>
    public static DefaultTrialEnvironment Environment { get; } = new();

    /// <summary>--checkpoint values: "none" = random init; default for the mini suite: the shipped mini ViT.</summary>
    internal static string? CheckpointFor(string? given, string suite) =>
        given is "none" ? null : given ?? (suite == "mini" ? "shipped:mini" : null);

    public static Command Create()
    {
        var task = new Option<string>("--task") { Description = "Task name (see `peft data list`).", Required = true };
        var method = new Option<string>("--method") { Description = "One of the study's 16 methods (see `peft methods`).", Required = true };
        var hp = new Option<string[]>("--hp") { Description = "Method hyperparameters key=value (the study's keys); given: no method grid.", AllowMultipleArgumentsPerToken = true };
        var profile = new Option<string>("--profile") { Description = string.Join(" | ", TrainOptions.Profiles), DefaultValueFactory = _ => "default" };
        var suite = new Option<string>("--suite") { Description = "mini | toy | vtab:ROOT", DefaultValueFactory = _ => "mini" };
        var preset = new Option<string>("--preset") { Description = "Backbone preset when no checkpoint gives the shape.", DefaultValueFactory = _ => "mini" };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "shipped:mini (default for the mini suite), a safetensors path, or none." };
        var outDir = new Option<string?>("--out") { Description = "Results store (resumable); none: nothing saved." };
        var bf16 = new Option<bool>("--bf16") { Description = "bf16 compute with float32 master weights." };
        var cmd = new Command("train", "The study's protocol for one method on one task: tune (lr x wd x method grid) on train800/val200, retrain the best on train800val200, test.")
            { task, method, hp, profile, suite, preset, checkpoint, outDir, bf16 };
        cmd.SetAction((r, cancel) => Cli.Guard(() =>
        {
            var suiteName = r.GetValue(suite)!;
            var ckpt = CheckpointFor(r.GetValue(checkpoint), suiteName);
            var options = ProtocolOptions.Vtab1k(r.GetValue(profile)!);
            options = options with { Train = options.Train with { Bf16 = r.GetValue(bf16) } };
            var m = r.GetValue(method)!;
            var given = Cli.Split(r.GetValue(hp));
            var grid = given.Count > 0 ? new[] { TrialConfig.ParseHp(given) } : PeftFactory.Grid(m, options.Profile);
            var manifest = new SweepManifest
            {
                Store = r.GetValue(outDir) ?? "", Suite = suiteName, Profile = options.Profile, Checkpoint = ckpt, Bf16 = r.GetValue(bf16),
                Backbone = PeftFactory.BackboneFor(ckpt, VitConfig.Preset(r.GetValue(preset)!)), Trials = new(),
            };
            using var vtab = Environment.LoadTask(manifest, r.GetValue(task)!);
            var store = r.GetValue(outDir) is string d ? new ResultsStore(d) : null;
            var clock = Stopwatch.StartNew();
            Console.WriteLine($"{m} on {vtab.Name} ({vtab.NumClasses} classes; {manifest.Backbone.Name}{(ckpt is null ? ", random init" : ", " + ckpt)}), profile {options.Profile}: " +
                $"{grid.Count * options.Lrs.Count * options.WeightDecays.Count * options.DropPaths.Count} tune trials + 1 final");
            var result = Protocol.Vtab1k(vtab, m, grid, Environment.Factory(manifest, m), options, store,
                c => new ConsoleProgressBar($"{c.Phase} lr={c.Lr} wd={c.WeightDecay} {c.HpText}".TrimEnd()), cancel);
            foreach (var rec in result.Tuning.Append(result.Final)) Console.WriteLine("  " + Tuning.Sweep.Describe(rec));
            var f = result.Final;
            Console.WriteLine($"test top-1 {f.Top1Last:F2} (best epoch {f.Top1Best:F2}), {f.TrainableParams:N0} trainable params excl. head, " +
                $"selected lr={f.Config.Lr} wd={f.Config.WeightDecay} {f.Config.HpText}; {clock.Elapsed.TotalSeconds:F1} s");
            return Task.FromResult(f.Status == "ok" ? 0 : 1);
        }));
        return cmd;
    }
}
