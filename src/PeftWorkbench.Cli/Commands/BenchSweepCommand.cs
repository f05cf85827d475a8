using System.CommandLine;
using PeftWorkbench.Bench;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft bench sweep` and `peft bench bf16-accuracy`: benchmarks made of whole `peft sweep` processes.</summary>
public static class BenchSweepCommand
{
    /// <summary>Adds both under the existing `bench` group.</summary>
    public static void AddTo(Command bench)
    {
        bench.Subcommands.Add(Sweep());
        bench.Subcommands.Add(Bf16Accuracy());
    }

    static Option<string[]> List(string name, string description) => new(name) { Description = description, AllowMultipleArgumentsPerToken = true };

    static Command Sweep()
    {
        var tasks = List("--tasks", "Tasks (default: the first mini task of each group, as notebook 02's default).");
        var methods = List("--methods", "Methods (default: all 16).");
        var profile = new Option<string>("--profile") { Description = "Profile of the sweep.", DefaultValueFactory = _ => "default" };
        var workers = new Option<int?>("--workers") { Description = "The parallel plan's workers (1 thread each). Default: one per core." };
        var rounds = new Option<int>("--rounds") { Description = "Rounds; each runs both plans, in alternating order.", DefaultValueFactory = _ => 1 };
        var studyPairs = new Option<int>("--study-pairs") { Description = "(task, method) pairs the whole default study trains (its notebooks' union).", DefaultValueFactory = _ => 48 };
        var cmd = new Command("sweep", "Wall time of the default sweep (all methods on one task per group) as `peft sweep` processes with 1 worker x all " +
            "cores' threads and with N workers x 1 thread, fresh stores, alternating rounds; extrapolated to the 11-task sweep and the whole study.")
            { tasks, methods, profile, workers, rounds, studyPairs };
        cmd.SetAction((r, cancel) => Cli.Guard(() =>
        {
            using var term = new Tuning.Termination(cancel);
            SweepBench.Compare(Cli.SelfCommand(), Cli.Split(r.GetValue(tasks)), Cli.Split(r.GetValue(methods)), r.GetValue(profile)!, r.GetValue(workers),
                r.GetValue(rounds), r.GetValue(studyPairs), Console.WriteLine, term.Token);
            return 0;
        }));
        return cmd;
    }

    static Command Bf16Accuracy()
    {
        var tasks = List("--tasks", "Tasks (default: the first mini task of each group).");
        var methods = List("--methods", "Methods.");
        var profile = new Option<string>("--profile") { Description = "Profile.", DefaultValueFactory = _ => "default" };
        var workers = new Option<int?>("--workers") { Description = "Workers per sweep (default: one per core)." };
        var store = new Option<string>("--store") { Description = "Folder for the two stores (fp32/, bf16/); rerun to resume.", Required = true };
        var cmd = new Command("bf16-accuracy", "The bf16 policy's measurement: the same sweep in float32 and in bf16 (peft sweep --bf16), final test " +
            "top-1 per pair, mean and worst difference against issue 16's bounds (0.3 / 1.0 points), the two wall times, and the verdict.")
            { tasks, methods, profile, workers, store };
        cmd.SetAction((r, cancel) => Cli.Guard(() =>
        {
            using var term = new Tuning.Termination(cancel);
            PeftWorkbench.Bench.Bf16Accuracy.Run(Cli.SelfCommand(), Cli.Split(r.GetValue(tasks)), Cli.Split(r.GetValue(methods)), r.GetValue(profile)!,
                r.GetValue(workers), r.GetValue(store)!, Console.WriteLine, term.Token);
            return 0;
        }));
        return cmd;
    }
}
