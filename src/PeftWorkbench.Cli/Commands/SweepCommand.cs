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
        var workers = new Option<int>("--workers") { Description = "Worker processes on this machine.", DefaultValueFactory = _ => 1 };
        var export = new Option<string?>("--export") { Description = "'slurm': write a manifest and sbatch job arrays instead of running." };
        var outDir = new Option<string>("--out") { Description = "Experiment directory (the results store).", Required = true };
        var peftCmd = new Option<string>("--peft-command") { Description = "How slurm tasks invoke peft.", DefaultValueFactory = _ => "peft" };
        var cpus = new Option<int>("--cpus-per-task") { Description = "slurm: CPUs per array task.", DefaultValueFactory = _ => 4 };
        var time = new Option<string>("--time") { Description = "slurm: time limit per array task.", DefaultValueFactory = _ => "04:00:00" };
        var partition = new Option<string?>("--partition") { Description = "slurm: partition." };
        var maxArray = new Option<int>("--max-array-size") { Description = "slurm: the cluster's MaxArraySize.", DefaultValueFactory = _ => 1001 };
        var cmd = new Command("sweep", "Run (or export) the protocol for methods x tasks into a resumable results store. " +
            "Rerun the same command (or `peft sweep --out DIR`) to resume.")
            { suite, tasks, methods, profile, protocol, preset, checkpoint, bf16, workers, export, outDir, peftCmd, cpus, time, partition, maxArray };
        cmd.SetAction((r, cancel) => Cli.Guard(() =>
        {
            var dir = Path.GetFullPath(r.GetValue(outDir)!);
            var manifestPath = Path.Combine(dir, "manifest.json");
            var taskList = Cli.Split(r.GetValue(tasks));
            var methodList = Cli.Split(r.GetValue(methods));
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
                    PeftCommand = r.GetValue(peftCmd)!, CpusPerTask = r.GetValue(cpus), Time = r.GetValue(time)!,
                    Partition = r.GetValue(partition), MaxArraySize = r.GetValue(maxArray),
                });
                Console.WriteLine($"manifest  {e.Manifest} ({e.TuneTrials} tune + {e.FinalTrials} final trials)");
                Console.WriteLine($"scripts   {e.TuneScript}, {e.FinalScript}");
                Console.WriteLine($"submit    bash {e.SubmitScript}");
                return Task.FromResult(0);
            }
            Console.WriteLine($"sweep {dir}: {manifest.Trials.Count} trials, profile {manifest.Profile}, {r.GetValue(workers)} worker(s)");
            var clock = Stopwatch.StartNew();
            var children = new List<Process>();
            for (int i = 1; i < r.GetValue(workers); i++) children.Add(Cli.StartSelf("worker", "--manifest", manifestPath, "--quiet"));
            try
            {
                int ran = Tuning.Sweep.RunWorker(manifest, Environment, null, Console.Out, cancel);
                foreach (var c in children) c.WaitForExit();
                Console.WriteLine($"done: {ran} trial(s) here, {children.Count} other worker(s), {clock.Elapsed.TotalSeconds:F1} s");
                ResultsCommand.PrintResults(new ResultsStore(dir), manifest);
            }
            finally
            {
                foreach (var c in children) { if (!c.HasExited) c.Kill(); c.Dispose(); }
            }
            return Task.FromResult(children.All(c => c.ExitCode == 0) ? 0 : 1);
        }));
        return cmd;
    }

    static Command Worker()
    {
        var manifest = new Option<string>("--manifest") { Description = "Sweep manifest (manifest.json).", Required = true };
        var quiet = new Option<bool>("--quiet") { Description = "No per-trial lines." };
        var cmd = new Command("worker", "Run trials of a sweep manifest until all are finished (one of several workers on a shared store).") { manifest, quiet };
        cmd.SetAction((r, cancel) => Cli.Guard(() =>
        {
            var m = SweepManifest.Load(r.GetValue(manifest)!);
            int ran = Tuning.Sweep.RunWorker(m, Environment, null, r.GetValue(quiet) ? null : Console.Out, cancel);
            if (!r.GetValue(quiet)) Console.WriteLine($"worker {System.Environment.ProcessId}: ran {ran} trial(s)");
            return Task.FromResult(0);
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
            var record = Tuning.Sweep.RunIndex(m, i, Environment, cfg is null ? null : new ConsoleProgressBar($"[{i}] {cfg.Task}/{cfg.Method}/{cfg.Phase}"), cancel);
            Console.WriteLine(Tuning.Sweep.Describe(record));
            return Task.FromResult(record.Status is "ok" or "diverged" ? 0 : 1);
        }));
        return cmd;
    }
}
