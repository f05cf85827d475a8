using System.CommandLine;
using System.Diagnostics;
using PeftWorkbench.Data;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Cli.Commands;

/// <summary>Training and tuning commands: sweep, worker, trial, results, bench.</summary>
public static class TrainCommand
{
    /// <summary>The environment sweeps run in: baselines and the toy suite now; the data suite and the PEFT
    /// methods register here when their branches land.</summary>
    public static DefaultTrialEnvironment Environment { get; } = new();

    public static IEnumerable<Command> Create() => new[] { Train(), Sweep(), Worker(), Trial(), Results(), Bench() };

    /// <summary>--checkpoint values: "none" = random init; default for the mini suite: the shipped mini ViT.</summary>
    static string? CheckpointFor(string? given, string suite) =>
        given is "none" ? null : given ?? (suite == "mini" ? "shipped:mini" : null);

    static Command Train()
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
        cmd.SetAction((r, cancel) => Guard(() =>
        {
            var suiteName = r.GetValue(suite)!;
            var ckpt = CheckpointFor(r.GetValue(checkpoint), suiteName);
            var options = ProtocolOptions.Vtab1k(r.GetValue(profile)!);
            options = options with { Train = options.Train with { Bf16 = r.GetValue(bf16) } };
            var m = r.GetValue(method)!;
            var given = Split(r.GetValue(hp));
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
        cmd.SetAction((r, cancel) => Guard(() =>
        {
            var dir = Path.GetFullPath(r.GetValue(outDir)!);
            var manifestPath = Path.Combine(dir, "manifest.json");
            var taskList = Split(r.GetValue(tasks));
            var methodList = Split(r.GetValue(methods));
            SweepManifest manifest;
            if (taskList.Count == 0 && methodList.Count == 0 && File.Exists(manifestPath)) manifest = SweepManifest.Load(manifestPath);
            else
            {
                if (taskList.Count == 0 || methodList.Count == 0) throw new ArgumentException("--tasks and --methods are required for a new sweep.");
                var options = r.GetValue(protocol) == "manyshot" ? ProtocolOptions.ManyShot(r.GetValue(profile)!) : ProtocolOptions.Vtab1k(r.GetValue(profile)!);
                options = options with { Train = options.Train with { Bf16 = r.GetValue(bf16) } };
                if (methodList is ["all"]) methodList = Peft.MethodRegistry.All.Select(x => x.Id).ToList();
                if (taskList is ["all"] && r.GetValue(suite) == "mini") taskList = Suite.Mini.Tasks.Select(x => x.Name).ToList();
                var ckpt = CheckpointFor(r.GetValue(checkpoint), r.GetValue(suite)!);
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
            for (int i = 1; i < r.GetValue(workers); i++) children.Add(StartSelf("worker", "--manifest", manifestPath, "--quiet"));
            try
            {
                int ran = Tuning.Sweep.RunWorker(manifest, Environment, null, Console.Out, cancel);
                foreach (var c in children) c.WaitForExit();
                Console.WriteLine($"done: {ran} trial(s) here, {children.Count} other worker(s), {clock.Elapsed.TotalSeconds:F1} s");
                PrintResults(new ResultsStore(dir), manifest);
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
        cmd.SetAction((r, cancel) => Guard(() =>
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
        cmd.SetAction((r, cancel) => Guard(() =>
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

    static Command Results()
    {
        var dir = new Argument<string>("dir") { Description = "Experiment directory (results store)." };
        var csv = new Option<string?>("--csv") { Description = "Also write the table as CSV here." };
        var cmd = new Command("results", "The finished trials of an experiment as a table, and the final test top-1 per task and method.") { dir, csv };
        cmd.SetAction(r => Guard(() =>
        {
            var path = Path.GetFullPath(r.GetValue(dir)!);
            if (!Directory.Exists(path)) throw new DirectoryNotFoundException($"No experiment directory {path}.");
            var store = new ResultsStore(path);
            var manifestPath = Path.Combine(path, "manifest.json");
            PrintResults(store, File.Exists(manifestPath) ? SweepManifest.Load(manifestPath) : null);
            if (r.GetValue(csv) is string csvPath)
            {
                Microsoft.Data.Analysis.DataFrame.SaveCsv(store.ToDataFrame(), csvPath);
                Console.WriteLine($"wrote {csvPath}");
            }
            return 0;
        }).Result);
        return cmd;
    }

    static void PrintResults(ResultsStore store, SweepManifest? manifest)
    {
        var records = store.Records();
        var claimed = store.Claimed();
        Console.WriteLine($"{store.Dir}: {records.Count} finished" + (manifest is null ? "" : $" of {manifest.Trials.Count}") +
            (claimed.Count > 0 ? $", {claimed.Count} claimed (running, or left by a killed worker)" : ""));
        foreach (var rec in records) Console.WriteLine("  " + Tuning.Sweep.Describe(rec));
        var finals = records.Where(x => x.Config.Phase == "final").ToList();
        if (finals.Count == 0) return;
        Console.WriteLine();
        Console.WriteLine($"  {"task",-16} {"method",-14} {"test last",9} {"test best",9} {"params",12}  selected");
        foreach (var f in finals.OrderBy(x => x.Config.Task).ThenBy(x => x.Config.Method))
            Console.WriteLine($"  {f.Config.Task,-16} {f.Config.Method,-14} {F(f.Top1Last),9} {F(f.Top1Best),9} {f.TrainableParams,12:N0}  " +
                (f.Status == "ok" ? $"lr={f.Config.Lr} wd={f.Config.WeightDecay} dp={f.Config.DropPath} {f.Config.HpText}" : f.Status));
        static string F(double? v) => v is double d ? d.ToString("F2") : "-";
    }

    /// <summary>Bad input and I/O problems end the command with one clear line (exit code 2), not a stack trace.</summary>
    static Task<int> Guard(Func<Task<int>> action)
    {
        try { return action(); }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or InvalidOperationException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return Task.FromResult(2);
        }
    }

    static Task<int> Guard(Func<int> action) => Guard(() => Task.FromResult(action()));

    static Command Bench()
    {
        var bench = new Command("bench", "Benchmarks that print figures (never timed tests).");
        var preset = new Option<string>("--preset") { Description = "Backbone preset.", DefaultValueFactory = _ => "mini" };
        var batch = new Option<int>("--batch") { Description = "Batch size.", DefaultValueFactory = _ => 64 };
        var steps = new Option<int>("--steps") { Description = "Full-FT steps for the memory check (RSS after 10 and after this many).", DefaultValueFactory = _ => 1000 };
        var threads = new Option<int>("--threads") { Description = "torch threads (0: leave the default).", DefaultValueFactory = _ => 0 };
        var train = new Command("train", "images/s for inference, a full-FT step and linear probing (cached vs full forward); RSS over a long run.") { preset, batch, steps, threads };
        train.SetAction((r, cancel) => Task.FromResult(BenchTrain(VitConfig.Preset(r.GetValue(preset)!), r.GetValue(batch), r.GetValue(steps), r.GetValue(threads), cancel)));
        bench.Subcommands.Add(train);

        var method = new Option<string>("--method") { Description = "Method to time.", DefaultValueFactory = _ => "full" };
        var profile = new Option<string>("--profile") { Description = "smoke | default | paper", DefaultValueFactory = _ => "default" };
        var protocol = new Command("protocol", "Wall time of the VTAB-1K protocol (tune grid + final run) for one method on a toy task " +
            "with VTAB-1K split sizes (800/200/1000/2000, 10 classes) at the preset's image size.") { preset, method, profile, threads };
        protocol.SetAction((r, cancel) => Guard(() =>
        {
            if (r.GetValue(threads) is int t and > 0) torch.set_num_threads(t);
            var config = VitConfig.Preset(r.GetValue(preset)!);
            using var task = ToySuite.Vtab1kSized(10, config.ImageSize, 2000, config.InChans);
            var options = ProtocolOptions.Vtab1k(r.GetValue(profile)!);
            var m = r.GetValue(method)!;
            var clock = Stopwatch.StartNew();
            var result = Protocol.Vtab1k(task, m, PeftFactory.Grid(m, options.Profile), new PeftFactory(config, null).Build, options, null, null, cancel);
            foreach (var rec in result.Tuning.Append(result.Final)) Console.WriteLine("  " + Tuning.Sweep.Describe(rec) + $"  {rec.ImagesPerSecond:F0} img/s");
            Console.WriteLine($"protocol {m} on {task.Name} ({config.Name}, profile {options.Profile}): {result.Tuning.Count} tune + 1 final in {clock.Elapsed.TotalSeconds:F1} s");
            return Task.FromResult(0);
        }));
        bench.Subcommands.Add(protocol);
        return bench;
    }

    static int BenchTrain(VitConfig config, int batch, int steps, int threads, CancellationToken cancel)
    {
        if (threads > 0) torch.set_num_threads(threads);
        var device = torch.CPU;
        Console.WriteLine($"bench train: {config.Name} (dim {config.EmbedDim}, depth {config.Depth}, {config.ImageSize} px, patch {config.PatchSize}), batch {batch}, {torch.get_num_threads()} torch threads, RSS {Rss() / 1e6:F0} MB at start");
        int n = batch * 10;
        using var data = Synthetic(config, n);
        using var model = new VisionTransformer(config, seed: 0);

        // Inference: the evaluation path (eval mode, no_grad, dispose scope per batch).
        Trainer.Evaluate(model, data, batch).Dispose(); // warm-up
        var sw = Stopwatch.StartNew();
        int evalRounds = 3;
        for (int i = 0; i < evalRounds; i++) Trainer.Evaluate(model, data, batch).Dispose();
        double inferIps = evalRounds * n / sw.Elapsed.TotalSeconds;
        Console.WriteLine($"  inference           {inferIps,8:F0} img/s");

        // Linear probe per epoch: through the full forward vs through the cache.
        var probeOptions = new TrainOptions { Epochs = 1, BatchSize = batch, Device = device };
        foreach (var (name, p) in model.named_parameters()) p.requires_grad = name.StartsWith("head.");
        sw.Restart();
        Trainer.Fit(model, data, null, probeOptions, cancel: cancel);
        double fullEpoch = sw.Elapsed.TotalSeconds;
        sw.Restart();
        using var cache = FeatureCache.Build(model, data, batch);
        double cacheBuild = sw.Elapsed.TotalSeconds;
        sw.Restart();
        int probeEpochs = 20;
        LinearProbe.Fit(model, cache, null, probeOptions with { Epochs = probeEpochs }, cancel: cancel);
        double cachedEpoch = sw.Elapsed.TotalSeconds / probeEpochs;
        Console.WriteLine($"  linear probe epoch  full forward {fullEpoch * 1e3:F0} ms, cached {cachedEpoch * 1e3:F2} ms ({fullEpoch / cachedEpoch:F0}x; cache built once in {cacheBuild * 1e3:F0} ms)");

        // Full fine-tuning, fp32 against bf16 (fp32 masters), alternated twice to even out the load of other processes.
        foreach (var p in model.parameters()) p.requires_grad = true;
        var shortRun = new TrainOptions { Epochs = 3, BatchSize = batch, Device = device, WarmupEpochs = 0 };
        var ips = new Dictionary<bool, List<double>> { [false] = new(), [true] = new() };
        foreach (var bf16 in new[] { false, true, false, true })
            ips[bf16].Add(Trainer.Fit(model, data, null, shortRun with { Bf16 = bf16 }, cancel: cancel).ImagesPerSecond);
        Console.WriteLine($"  full FT step fp32   {ips[false].Average(),8:F0} img/s ({string.Join(", ", ips[false].Select(v => v.ToString("F0")))})");
        Console.WriteLine($"  full FT step bf16   {ips[true].Average(),8:F0} img/s ({string.Join(", ", ips[true].Select(v => v.ToString("F0")))}), x{ips[true].Average() / ips[false].Average():F2}");

        // Memory over a long fp32 run through Trainer.Fit: RSS after 10, 100, half and all `steps` steps.
        long rss10 = 0, rss100 = 0, rssHalf = 0, rssEnd = 0;
        int stepsPerEpoch = (n + batch - 1) / batch;
        var options = new TrainOptions { Epochs = (steps + stepsPerEpoch - 1) / stepsPerEpoch, BatchSize = batch, Device = device, WarmupEpochs = 0 };
        var progress = new Probe(p =>
        {
            if (p.Phase != "train") return;
            if (p.GlobalStep == 10) rss10 = Rss();
            if (p.GlobalStep == 100) rss100 = Rss();
            if (p.GlobalStep == steps / 2) rssHalf = Rss();
            if (p.GlobalStep == steps) rssEnd = Rss();
            if (p.GlobalStep % 100 == 0) Console.Write($"\r  full FT step {p.GlobalStep}/{steps}  {p.ImagesPerSecond:F0} img/s   ");
        });
        var h = Trainer.Fit(model, data, null, options, progress, cancel);
        Console.WriteLine($"\r  full FT step        {h.ImagesPerSecond,8:F0} img/s ({h.Steps} steps, {h.WallSeconds:F1} s)                 ");
        // Only the marks the run reached (a short --steps run has no step 100).
        var marks = new List<(int Step, long Rss)> { (10, rss10), (100, rss100), (steps / 2, rssHalf), (steps, rssEnd) }
            .Where(m => m.Step <= steps && m.Rss > 0).DistinctBy(m => m.Step).OrderBy(m => m.Step);
        Console.WriteLine($"  RSS                 after {string.Join(", ", marks.Select(m => $"{m.Step} steps {m.Rss / 1e6:F0} MB"))}; peak {PeakRss() / 1e6:F0} MB");
        return 0;
    }

    sealed class Probe(Action<TrainProgress> f) : IProgress<TrainProgress> { public void Report(TrainProgress p) => f(p); }

    static ImageSet Synthetic(VitConfig c, int n)
    {
        var gen = new Generator(1);
        return new ImageSet(torch.randn(new long[] { n, c.InChans, c.ImageSize, c.ImageSize }, generator: gen),
            torch.randint(0, c.NumClasses, new long[] { n }, generator: gen, dtype: ScalarType.Int64), c.NumClasses, "synthetic");
    }

    static long Rss() => PeftWorkbench.Bench.ProcessMemory.Rss();
    static long PeakRss() => PeftWorkbench.Bench.ProcessMemory.PeakRss();

    static List<string> Split(string[]? values) =>
        (values ?? Array.Empty<string>()).SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();

    /// <summary>Starts this same CLI (dotnet + dll, or the apphost) with <paramref name="args"/>.</summary>
    static Process StartSelf(params string[] args)
    {
        var psi = new ProcessStartInfo { UseShellExecute = false };
        var exe = System.Environment.ProcessPath!;
        psi.FileName = exe;
        if (Path.GetFileNameWithoutExtension(exe) == "dotnet") psi.ArgumentList.Add(typeof(TrainCommand).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi) ?? throw new InvalidOperationException($"could not start {exe}");
    }
}
