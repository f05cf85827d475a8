using System.CommandLine;
using System.Diagnostics;
using PeftWorkbench.Data;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft sweep`, `peft worker`, `peft trial`: resumable sweeps of the protocol over methods x tasks.</summary>
public static class SweepCommand
{
    public static IEnumerable<Command> Create() => new[] { Sweep(), Worker(), Trial() };

    static DefaultTrialEnvironment Environment => TrainCommand.Environment;

    static Command Sweep()
    {
        var suite = new Option<string>("--suite") { Description = "Task suite: " + string.Join(", ", Environment.Tasks.Keys) + ", vtab:ROOT", DefaultValueFactory = _ => "mini" };
        var tasks = new Option<string[]>("--tasks") { Description = "Tasks (comma-separated or repeated; 'all' = the whole mini suite).", AllowMultipleArgumentsPerToken = true };
        var methods = new Option<string[]>("--methods") { Description = "Methods (the study's ids, see `peft methods`; 'all' = all 16).", AllowMultipleArgumentsPerToken = true };
        var profile = new Option<string>("--profile") { Description = string.Join(" | ", TrainOptions.Profiles), DefaultValueFactory = _ => "default" };
        var protocol = new Option<string>("--protocol") { Description = "vtab1k | manyshot", DefaultValueFactory = _ => "vtab1k" };
        var preset = new Option<string>("--preset") { Description = "Backbone preset.", DefaultValueFactory = _ => "mini" };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "shipped:mini (default for the mini suite), a safetensors path (timm names), or none." };
        var bf16 = new Option<bool>("--bf16") { Description = "bf16 compute with float32 master weights." };
        var workers = new Option<int?>("--workers") { Description = "Worker processes on this machine. Default: PEFT_WORKERS, else one per core." };
        var threads = new Option<int?>("--threads") { Description = "Torch threads per worker. Default: PEFT_THREADS, else cores / workers (at least 1)." };
        var export = new Option<string?>("--export") { Description = "'slurm': write a manifest and sbatch job arrays instead of running." };
        var outDir = new Option<string>("--out") { Description = "Experiment directory (the results store).", Required = true };
        var peftCmd = new Option<string?>("--peft-command") { Description = "slurm: how array tasks start peft (made absolute at export). Default: this very CLI (dotnet + peft.dll)." };
        var cpus = new Option<int?>("--cpus-per-task") { Description = "slurm: CPUs per array task, also the trial's threads. Default: what one trial uses here (libtorch's threads, one per core)." };
        var time = new Option<string>("--time") { Description = "slurm: time limit per array task.", DefaultValueFactory = _ => "04:00:00" };
        var partition = new Option<string?>("--partition") { Description = "slurm: partition." };
        var mem = new Option<string?>("--mem") { Description = "slurm: memory per task (e.g. 4G)." };
        var account = new Option<string?>("--account") { Description = "slurm: account to charge." };
        var qos = new Option<string?>("--qos") { Description = "slurm: quality of service." };
        var maxParallel = new Option<int>("--max-parallel") { Description = "slurm: at most N array tasks at once (the array's %N throttle; 0 = no limit)." };
        var sbatch = new Option<string[]>("--sbatch") { Description = "slurm: another sbatch option for both arrays, repeatable (--sbatch=--exclusive --sbatch=--constraint=avx512)." };
        var maxArray = new Option<int>("--max-array-size") { Description = "slurm: the cluster's MaxArraySize.", DefaultValueFactory = _ => 1001 };
        var cmd = new Command("sweep", "Run (or export) the protocol for methods x tasks into a resumable results store. " +
            "Rerun the same command (or `peft sweep --out DIR`) to resume.")
            { suite, tasks, methods, profile, protocol, preset, checkpoint, bf16, workers, threads, export, outDir, peftCmd, cpus, time, partition, mem, account, qos, maxParallel, sbatch, maxArray };
        cmd.SetAction((r, cancel) => Cli.Guard(() =>
        {
            var dir = Path.GetFullPath(r.GetValue(outDir)!);
            var manifestPath = Path.Combine(dir, "manifest.json");
            var taskList = Cli.Split(r.GetValue(tasks));
            var methodList = Cli.Split(r.GetValue(methods));
            // A store path that the slurm scripts cannot carry is refused before the manifest is written.
            if (r.GetValue(export) == "slurm") Tuning.Sweep.CheckSlurmFolder(Path.Combine(dir, "slurm"));
            SweepManifest manifest;
            if (taskList.Count == 0 && methodList.Count == 0 && File.Exists(manifestPath)) manifest = SweepManifest.Load(manifestPath);
            else
            {
                if (taskList.Count == 0 || methodList.Count == 0) throw new ArgumentException("--tasks and --methods are required for a new sweep.");
                var options = r.GetValue(protocol) == "manyshot" ? ProtocolOptions.ManyShot(r.GetValue(profile)!) : ProtocolOptions.Vtab1k(r.GetValue(profile)!);
                options = options with { Train = options.Train with { Bf16 = r.GetValue(bf16) } };
                if (methodList is ["all"]) methodList = Peft.MethodRegistry.All.Select(x => x.Id).ToList();
                if (taskList is ["all"] && r.GetValue(suite) == "mini") taskList = Suite.Mini.Tasks.Select(x => x.Name).ToList();
                var ckpt = TrainCommand.CheckpointFor(r.GetValue(checkpoint), r.GetValue(suite)!);
                manifest = Tuning.Sweep.Plan(dir, r.GetValue(suite)!, taskList, methodList, options,
                    PeftFactory.BackboneFor(ckpt, VitConfig.Preset(r.GetValue(preset)!)), Environment, ckpt);
                if (File.Exists(manifestPath))
                {
                    var old = SweepManifest.Load(manifestPath);
                    if (!old.Trials.Select(t => t.Key).SequenceEqual(manifest.Trials.Select(t => t.Key)))
                        throw new InvalidOperationException($"{dir} holds a different sweep ({old.Trials.Count} trials); use another --out, or `peft sweep --out {dir}` to resume it.");
                }
                else manifest.Save(manifestPath);
            }
            if (r.GetValue(export) is string kind)
            {
                if (kind != "slurm") throw new ArgumentException($"--export: only 'slurm' is supported, got '{kind}'.");
                var e = Tuning.Sweep.ExportSlurm(manifest, manifestPath, Path.Combine(dir, "slurm"), new SlurmOptions
                {
                    PeftCommand = r.GetValue(peftCmd) is string pc ? pc.Split(' ', StringSplitOptions.RemoveEmptyEntries) : Cli.SelfCommand(),
                    CpusPerTask = r.GetValue(cpus) ?? SlurmOptions.TrialThreads, Time = r.GetValue(time)!,
                    Partition = r.GetValue(partition), Mem = r.GetValue(mem), Account = r.GetValue(account), Qos = r.GetValue(qos),
                    MaxParallel = r.GetValue(maxParallel), ExtraDirectives = r.GetValue(sbatch) ?? Array.Empty<string>(), MaxArraySize = r.GetValue(maxArray),
                });
                Console.WriteLine($"manifest  {e.Manifest} ({e.TuneTrials} tune + {e.FinalTrials} final trials)");
                Console.WriteLine($"scripts   {e.TuneScript}, {e.FinalScript}");
                Console.WriteLine($"command   {string.Join(" ", e.Command)}");
                Console.WriteLine($"submit    bash {e.SubmitScript}");
                return Task.FromResult(0);
            }
            var contents = new ResultsStore(dir).Read();
            if (contents.InvalidSummary() is string bad) Console.WriteLine(bad);
            int already = manifest.Trials.Count(t => contents.Records.Any(x => x.Key == t.Key));
            var plan = WorkerPlan.For(r.GetValue(workers), r.GetValue(threads)).Capped(manifest.Trials.Count - already);
            ThreadBudget.Pin(plan.Threads); // this process is worker 1 (its OpenMP policy was set when libtorch loaded)
            Console.WriteLine($"sweep {dir}: {manifest.Trials.Count} trials" + (already > 0 ? $" ({already} already finished, skipped)" : "") +
                $", profile {manifest.Profile}, {plan.Describe()}");
            var clock = Stopwatch.StartNew();
            using var term = new Termination(cancel);
            LocalSweep result;
            try
            {
                result = Tuning.Sweep.RunLocal(manifest, plan.Workers, Environment, () => plan.StartWorker(Cli.SelfCommand(), manifestPath), Console.Out, term.Token);
            }
            catch (OperationCanceledException) when (term.Signal is not null)
            {
                Console.Error.WriteLine($"sweep stopped by signal {term.Signal}: finished trials are kept; rerun to resume");
                return Task.FromResult(term.ExitCode);
            }
            Console.WriteLine($"done: {result.RanHere} trial(s) here, {result.Others.Count} other worker(s), {clock.Elapsed.TotalSeconds:F1} s");
            Console.WriteLine($"  worker 1 (pid {System.Environment.ProcessId}, this process): ran {result.RanHere} trial(s)");
            foreach (var w in result.Others) Console.WriteLine("  " + w.Describe());
            ResultsCommand.PrintResults(new ResultsStore(dir), manifest);
            return Task.FromResult(result.Ok ? 0 : 1);
        }));
        return cmd;
    }

    /// <summary>A worker's exit status when its parent ended (no one reads it then; it tells a log apart from a signal).</summary>
    const int ParentGoneExitCode = 3;

    static Command Worker()
    {
        var manifest = new Option<string>("--manifest") { Description = "Sweep manifest (manifest.json).", Required = true };
        var quiet = new Option<bool>("--quiet") { Description = "No per-trial lines." };
        var withParent = new Option<bool>(ParentWatch.Flag) { Description = "Stop when stdin closes (the process that started this worker holds it open; it closes when that process ends)." };
        var cmd = new Command("worker", "Run trials of a sweep manifest until all are finished (one of several workers on a shared store).") { manifest, quiet, withParent };
        cmd.SetAction((r, cancel) => Cli.Guard(() =>
        {
            var m = SweepManifest.Load(r.GetValue(manifest)!);
            using var term = new Termination(cancel);
            if (r.GetValue(withParent))
                ParentWatch.Start(() => term.Stop("the process that started this worker ended", ParentGoneExitCode));
            try
            {
                int ran = Tuning.Sweep.RunWorker(m, Environment, null, r.GetValue(quiet) ? null : Console.Out, term.Token);
                if (!r.GetValue(quiet)) Console.WriteLine($"worker {System.Environment.ProcessId}: ran {ran} trial(s)");
                return Task.FromResult(0);
            }
            catch (OperationCanceledException) when (term.Stopped) { return Task.FromResult(term.ExitCode); }
        }));
        return cmd;
    }

    static Command Trial()
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
