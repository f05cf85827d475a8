using System.CommandLine;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft worker` and `peft trial`: the doors through which worker processes and slurm array tasks run a
/// sweep manifest's trials (<see cref="WorkerProcess.Run"/>, <see cref="Tuning.Sweep.RunIndex"/>).</summary>
public static class WorkerCommand
{
    static DefaultTrialEnvironment Environment => Study.Environment;

    public static Command Worker()
    {
        var manifest = new Option<string>(WorkerProcess.ManifestOption) { Description = "Sweep manifest (manifest.json).", Required = true };
        var quiet = new Option<bool>(WorkerProcess.QuietOption) { Description = "No per-trial lines." };
        var withParent = new Option<bool>(ParentWatch.Flag) { Description = "Stop when stdin closes (the process that started this worker holds it open; it closes when that process ends)." };
        var cmd = new Command(WorkerProcess.Verb, "Run trials of a sweep manifest until all are finished (one of several workers on a shared store).") { manifest, quiet, withParent };
        cmd.SetAction((r, cancel) => Cli.Guard(() => WorkerProcess.Run(r.GetValue(manifest)!, r.GetValue(quiet), r.GetValue(withParent), cancel)));
        return cmd;
    }

    public static Command Trial()
    {
        var manifest = new Option<string>("--manifest") { Description = "Sweep manifest (manifest.json).", Required = true };
        var index = new Option<int>("--index") { Description = "Trial index in the manifest (a slurm array task id).", Required = true };
        var cmd = new Command("trial", "Run one trial of a sweep manifest into its store (what each slurm array task runs).") { manifest, index };
        cmd.SetAction((r, cancel) => Cli.Guard(() =>
        {
            var m = SweepManifest.Load(r.GetValue(manifest)!);
            int i = r.GetValue(index);
            var cfg = i >= 0 && i < m.Trials.Count ? m.Trials[i] : null;
            using var term = new Termination(cancel);
            TrialRun run;
            try
            {
                run = Tuning.Sweep.RunIndex(m, i, Environment, cfg is null ? null : new ConsoleProgressBar($"[{i}] {cfg.Task}/{cfg.Method}/{cfg.Phase}"),
                    Console.Out, term.Token);
            }
            catch (OperationCanceledException) when (term.Signal is not null)
            {
                Console.Error.WriteLine($"[{i}] stopped by signal {term.Signal}: nothing recorded, claim released; a requeued or resubmitted task runs it again");
                return Task.FromResult(term.ExitCode);
            }
            var rec = run.Record;
            Console.WriteLine(run.AlreadyFinished
                ? $"[{i}] already finished (recorded {rec.FinishedUtc:yyyy-MM-dd HH:mm:ss}Z by {rec.Host} pid {rec.Pid}); nothing run: {Tuning.Sweep.Describe(rec)}"
                : $"[{i}] {Tuning.Sweep.Describe(rec)}");
            return Task.FromResult(rec.Status is "ok" or "diverged" ? 0 : 1);
        }));
        return cmd;
    }
}
