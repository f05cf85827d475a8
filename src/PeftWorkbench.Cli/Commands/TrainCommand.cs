using System.CommandLine;
using System.Diagnostics;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft train`: the study's protocol for one method on one task (a shell over <see cref="Study.Run"/>).</summary>
public static class TrainCommand
{
    /// <summary>The environment train and sweeps run in: the suites and the backbone factory.</summary>
    public static DefaultTrialEnvironment Environment => Study.Environment;

    internal static string? CheckpointFor(string? given, string suite) => Study.CheckpointFor(given, suite);

    public static Command Create()
    {
        var task = new Option<string>("--task") { Description = "Task name (see `peft data list`).", Required = true };
        var method = new Option<string>("--method") { Description = "One of the study's 16 methods (see `peft methods`).", Required = true };
        var hp = new Option<string[]>("--hp") { Description = "Method hyperparameters key=value (the study's keys); given: no method grid. lr= and wd= fix the learning rate and weight decay.", AllowMultipleArgumentsPerToken = true };
        var profile = new Option<string>("--profile") { Description = string.Join(" | ", Profiles.Names), DefaultValueFactory = _ => "default" };
        var protocol = new Option<string>("--protocol") { Description = "vtab1k | manyshot (the task's full training set)", DefaultValueFactory = _ => "vtab1k" };
        var suite = new Option<string>("--suite") { Description = "mini | toy | vtab:ROOT", DefaultValueFactory = _ => "mini" };
        var preset = new Option<string>("--preset") { Description = "Backbone preset when no checkpoint gives the shape.", DefaultValueFactory = _ => "mini" };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "shipped:mini-hand (default for the mini suite), shipped:mini, a safetensors path, or none." };
        var outDir = new Option<string?>("--out") { Description = "Results store (resumable); none: a temporary one." };
        var bf16 = new Option<bool>("--bf16") { Description = "bf16 compute with float32 master weights." };
        var trainImages = new Option<int?>("--train-images") { Description = "vtab1k: train on a seeded subset of N train800 images (the final on it + val200); 800: all of them (notebook 07's sizes)." };
        var cmd = new Command("train", "The study's protocol for one method on one task: tune (lr x wd x method grid) on train800/val200, retrain the best on train800val200, test.")
            { task, method, hp, profile, protocol, suite, preset, checkpoint, outDir, bf16, trainImages };
        cmd.SetAction((r, cancel) => Cli.Guard(() =>
        {
            var given = Cli.Split(r.GetValue(hp));
            var clock = Stopwatch.StartNew();
            var store = r.GetValue(outDir) is "none" ? null : r.GetValue(outDir); // Study.Run's null: a temporary store
            using var run = Study.Run(r.GetValue(task)!, r.GetValue(method)!, r.GetValue(profile)!, given.Count > 0 ? TrialConfig.ParseHp(given) : null,
                store, r.GetValue(suite)!, r.GetValue(protocol)!, r.GetValue(checkpoint), r.GetValue(preset)!, r.GetValue(bf16),
                c => new ConsoleProgressBar($"{c.Phase} lr={c.Lr} wd={c.WeightDecay} {c.HpText}".TrimEnd()), cancel, trainImages: r.GetValue(trainImages));
            Console.WriteLine($"{run.Method} on {run.Task}{(run.Options.TrainImages is int n ? $" ({n} training images)" : "")}, profile {run.Profile.Name}: {run.Tuning.Count} tune trials + 1 final; store {run.Store}");
            foreach (var rec in run.Tuning.Append(run.Final)) Console.WriteLine("  " + Tuning.Sweep.Describe(rec));
            var f = run.Final;
            if (f.Status != "ok")
            {
                Console.Error.WriteLine($"The final trial {f.Key} is {f.Status}{(f.Error is null ? "" : $": {f.Error}")}{(ResultsStore.Retryable(f) ? " (a rerun retries it)" : "")}.");
                return Task.FromResult(1);
            }
            Console.WriteLine($"test top-1 {f.Top1Last:F2} (best epoch {f.Top1Best:F2}), {f.TrainableParams:N0} trainable params excl. head, " +
                $"selected lr={f.Config.Lr} wd={f.Config.WeightDecay} {f.Config.HpText}; {clock.Elapsed.TotalSeconds:F1} s");
            return Task.FromResult(0);
        }));
        return cmd;
    }

    /// <summary>`peft profiles`: the profile table as Markdown (README's copy of it is checked by a test).</summary>
    public static Command CreateProfiles()
    {
        var cmd = new Command("profiles", "The profile table (smoke, default, mini-full, paper): budgets, grids and every protocol choice, as Markdown.");
        cmd.SetAction(_ => { Console.Write(Profiles.MarkdownTable()); return 0; });
        return cmd;
    }
}
