using System.CommandLine;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft sweep`: a resumable sweep of the protocol over methods x tasks (<see cref="SweepDirectory"/>), run here or
/// exported as slurm job arrays; `peft worker` and `peft trial` are in WorkerCommand.</summary>
public static class SweepCommand
{
    public static IEnumerable<Command> Create() => new[] { Sweep(), WorkerCommand.Worker(), WorkerCommand.Trial() };

    static DefaultTrialEnvironment Environment => TrainCommand.Environment;

    static Command Sweep()
    {
        var suite = new Option<string>("--suite") { Description = "Task suite: " + string.Join(", ", Environment.Tasks.Keys) + ", vtab:ROOT", DefaultValueFactory = _ => "mini" };
        var tasks = new Option<string[]>("--tasks") { Description = "Tasks (comma-separated or repeated; 'all' = the whole mini suite).", AllowMultipleArgumentsPerToken = true };
        var methods = new Option<string[]>("--methods") { Description = "Methods (the study's ids, see `peft methods`; 'all' = all 16).", AllowMultipleArgumentsPerToken = true };
        var profile = new Option<string>("--profile") { Description = string.Join(" | ", TrainOptions.Profiles), DefaultValueFactory = _ => "default" };
        var protocol = new Option<string>("--protocol") { Description = "vtab1k | manyshot", DefaultValueFactory = _ => "vtab1k" };
        var preset = new Option<string>("--preset") { Description = "Backbone preset.", DefaultValueFactory = _ => "mini" };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "shipped:mini-hand (default for the mini suite), shipped:mini, a safetensors path (timm names), or none." };
        var bf16 = new Option<bool>("--bf16") { Description = "bf16 compute with float32 master weights." };
        var trainImages = new Option<int?>("--train-images") { Description = "vtab1k: train on a seeded subset of N train800 images (the final on it + val200); 800: all of them (notebook 07's sizes)." };
        var seed = new Option<long?>("--seed") { Description = "Seed of every trial (init, data order, augmentation). Default: the profile's. Another seed measures seed-to-seed spread." };
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
            { suite, tasks, methods, profile, protocol, preset, checkpoint, bf16, trainImages, seed, workers, threads, export, outDir, peftCmd, cpus, time, partition, mem, account, qos, maxParallel, sbatch, maxArray };
        cmd.SetAction((r, cancel) => Cli.Guard(() =>
        {
            var dir = Path.GetFullPath(r.GetValue(outDir)!);
            // A store path that the slurm scripts cannot carry is refused before the manifest is written.
            if (r.GetValue(export) is string kind && kind != "slurm") throw new ArgumentException($"--export: only 'slurm' is supported, got '{kind}'.");
            if (r.GetValue(export) == "slurm") Tuning.Sweep.CheckSlurmFolder(Path.Combine(dir, "slurm"));
            // A bad --train-images (below 1, with manyshot, beyond a task's train800) is refused here or in the plan's identity check, before the store is touched.
            var options = ProtocolOptions.For(r.GetValue(profile)!, r.GetValue(protocol)!, bf16: r.GetValue(bf16), seed: r.GetValue(seed), trainImages: r.GetValue(trainImages));
            // Out-of-range --workers/--threads are refused before the store gets a manifest (slurm export ignores them).
            var plan = r.GetValue(export) is null ? WorkerPlan.For(r.GetValue(workers), r.GetValue(threads)) : null;
            var manifest = SweepDirectory.PlanOrResume(dir, new SweepRequest(r.GetValue(suite)!, Cli.Split(r.GetValue(tasks)), Cli.Split(r.GetValue(methods)), options,
                r.GetValue(preset)!, r.GetValue(checkpoint)), Environment);
            if (r.GetValue(export) is not null)
            {
                var e = Tuning.Sweep.ExportSlurm(manifest, SweepDirectory.ManifestPath(dir), Path.Combine(dir, "slurm"), new SlurmOptions
                {
                    PeftCommand = r.GetValue(peftCmd) is string pc ? pc.Split(' ', StringSplitOptions.RemoveEmptyEntries) : Cli.SelfCommand(),
                    CpusPerTask = r.GetValue(cpus) ?? SlurmOptions.TrialThreads, Time = r.GetValue(time)!,
                    Partition = r.GetValue(partition), Mem = r.GetValue(mem), Account = r.GetValue(account), Qos = r.GetValue(qos),
                    MaxParallel = r.GetValue(maxParallel), ExtraDirectives = r.GetValue(sbatch) ?? Array.Empty<string>(), MaxArraySize = r.GetValue(maxArray),
                });
                foreach (var line in e.Describe()) Console.WriteLine(line);
                return Task.FromResult(0);
            }
            using var term = new Termination(cancel);
            try
            {
                return Task.FromResult(SweepDirectory.RunHere(manifest, plan!, Cli.SelfCommand(), Environment, Console.Out, term.Token).Ok ? 0 : 1);
            }
            catch (OperationCanceledException) when (term.Signal is not null)
            {
                Console.Error.WriteLine($"sweep stopped by signal {term.Signal}: finished trials are kept; rerun to resume");
                return Task.FromResult(term.ExitCode);
            }
        }));
        return cmd;
    }
}
