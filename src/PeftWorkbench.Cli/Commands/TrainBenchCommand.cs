using System.CommandLine;
using System.Diagnostics;
using PeftWorkbench.Bench;
using PeftWorkbench.Data;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft bench train` and `peft bench protocol`: throughput, memory and protocol wall-time figures.</summary>
public static class TrainBenchCommand
{
    public static Command Create()
    {
        var bench = new Command("bench", "Benchmarks that print figures (never timed tests).");
        var preset = new Option<string>("--preset") { Description = "Backbone preset.", DefaultValueFactory = _ => "mini" };
        var batch = new Option<int>("--batch") { Description = "Batch size.", DefaultValueFactory = _ => 64 };
        var steps = new Option<int>("--steps") { Description = "Full-FT steps for the memory check (RSS after 10 and after this many).", DefaultValueFactory = _ => 1000 };
        var threads = new Option<int>("--threads") { Description = "torch threads (0: leave the default).", DefaultValueFactory = _ => 0 };
        var train = new Command("train", "images/s for inference, a full-FT step and linear probing (cached vs full forward); RSS over a long run.") { preset, batch, steps, threads };
        train.SetAction((r, cancel) => Cli.Guard(() => BenchTrain(VitConfig.Preset(r.GetValue(preset)!), r.GetValue(batch), r.GetValue(steps), r.GetValue(threads), cancel)));
        bench.Subcommands.Add(train);

        var method = new Option<string>("--method") { Description = "Method to time.", DefaultValueFactory = _ => "full" };
        var profile = new Option<string>("--profile") { Description = "smoke | default | paper", DefaultValueFactory = _ => "default" };
        var protocol = new Command("protocol", "Wall time of the VTAB-1K protocol (tune grid + final run) for one method on a toy task " +
            "with VTAB-1K split sizes (800/200/1000/2000, 10 classes) at the preset's image size.") { preset, method, profile, threads };
        protocol.SetAction((r, cancel) => Cli.Guard(() =>
        {
            if (r.GetValue(threads) is int t and > 0) ThreadBudget.Pin(t);
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

        var methods = new Option<string>("--methods") { Description = "Comma-separated methods.", DefaultValueFactory = _ => "full,lora" };
        var rounds = new Option<int>("--rounds") { Description = "Alternating rounds (per-tensor and flat each once per round).", DefaultValueFactory = _ => 5 };
        var optimizer = new Command("optimizer", "Flat AdamW against TorchSharp's per-tensor AdamW: zero_grad + step alone, and training " +
            "images/s through the trainer, in alternating rounds (medians).") { preset, batch, methods, rounds, threads };
        optimizer.SetAction((r, cancel) => Cli.Guard(() =>
        {
            if (r.GetValue(threads) is int t and > 0) ThreadBudget.Pin(t);
            var config = VitConfig.Preset(r.GetValue(preset)!);
            var ms = Cli.Split(new[] { r.GetValue(methods)! });
            Console.WriteLine($"bench optimizer: {config.Name} (dim {config.EmbedDim}, depth {config.Depth}, {config.ImageSize} px), batch {r.GetValue(batch)}, " +
                $"{torch.get_num_threads()} torch threads, {r.GetValue(rounds)} rounds; load {Cli.LoadAverage()}");
            foreach (var line in OptimizerBench.Table(OptimizerBench.Run(config, ms, r.GetValue(batch), r.GetValue(rounds), stepsPerRound: 4, cancel)))
                Console.WriteLine(line);
            Console.WriteLine($"load {Cli.LoadAverage()} (1, 5, 15 min); ratios are within this run, so shared cores weigh on both columns alike");
            return Task.FromResult(0);
        }));
        bench.Subcommands.Add(optimizer);
        bench.Subcommands.Add(SweepBenchCommand());
        bench.Subcommands.Add(Bf16AccuracyCommand());
        return bench;
    }

    static Command Bf16AccuracyCommand()
    {
        var tasks = new Option<string[]>("--tasks") { Description = "Tasks (default: the first mini task of each group).", AllowMultipleArgumentsPerToken = true };
        var methods = new Option<string[]>("--methods") { Description = "Methods.", AllowMultipleArgumentsPerToken = true };
        var profile = new Option<string>("--profile") { Description = "Profile.", DefaultValueFactory = _ => "default" };
        var workers = new Option<int?>("--workers") { Description = "Workers per sweep (default: one per core)." };
        var store = new Option<string>("--store") { Description = "Folder for the two stores (fp32/, bf16/); rerun to resume.", Required = true };
        var cmd = new Command("bf16-accuracy", "The bf16 policy's measurement: the same sweep in float32 and in bf16 (peft sweep --bf16), final test " +
            "top-1 per pair, mean and worst difference against issue 16's bounds (0.3 / 1.0 points), the two wall times, and the verdict.")
            { tasks, methods, profile, workers, store };
        cmd.SetAction((r, cancel) => Cli.Guard(() =>
        {
            var taskList = Cli.Split(r.GetValue(tasks));
            if (taskList.Count == 0) taskList = Suite.Groups.Select(g => Suite.Mini.Tasks.First(t => t.Group == g).Name).ToList();
            var methodList = Cli.Split(r.GetValue(methods));
            if (methodList.Count == 0) methodList = new() { "linear", "full", "lora", "vpt_deep" };
            methodList = methodList.Select(m => Peft.MethodRegistry.Get(m).Id).ToList();
            var root = Path.GetFullPath(r.GetValue(store)!);
            Console.WriteLine($"bench bf16-accuracy: {methodList.Count} methods x {taskList.Count} tasks, profile {r.GetValue(profile)}, the shipped mini checkpoint; load {Cli.LoadAverage()}");
            using var term = new Termination(cancel);
            var seconds = new Dictionary<bool, double>();
            foreach (var bf16 in new[] { false, true })
            {
                var plan = WorkerPlan.For(r.GetValue(workers), null);
                var t = SweepBench.Time(Cli.SelfCommand(), "mini", taskList, methodList, r.GetValue(profile)!, plan, Path.Combine(root, bf16 ? "bf16" : "fp32"), term.Token, bf16);
                seconds[bf16] = t.Seconds;
                Console.WriteLine($"  {(bf16 ? "bf16" : "fp32")}: {t.Seconds:F1} s, {t.Trials} trials in the store, {plan.Describe()}, load {t.LoadBefore} -> {t.LoadAfter}");
            }
            var pairs = Bf16Accuracy.Compare(Path.Combine(root, "fp32"), Path.Combine(root, "bf16"), taskList, methodList);
            foreach (var line in Bf16Accuracy.Table(pairs, seconds[false], seconds[true])) Console.WriteLine(line);
            return Task.FromResult(0);
        }));
        return cmd;
    }

    static Command SweepBenchCommand()
    {
        var tasks = new Option<string[]>("--tasks") { Description = "Tasks (default: the first mini task of each group, as notebook 02's default).", AllowMultipleArgumentsPerToken = true };
        var methods = new Option<string[]>("--methods") { Description = "Methods (default: all 16).", AllowMultipleArgumentsPerToken = true };
        var profile = new Option<string>("--profile") { Description = "Profile of the sweep.", DefaultValueFactory = _ => "default" };
        var workers = new Option<int?>("--workers") { Description = "The parallel plan's workers (1 thread each). Default: one per core." };
        var rounds = new Option<int>("--rounds") { Description = "Rounds; each runs both plans, in alternating order.", DefaultValueFactory = _ => 1 };
        var studyPairs = new Option<int>("--study-pairs") { Description = "(task, method) pairs the whole default study trains (its notebooks' union).", DefaultValueFactory = _ => 48 };
        var cmd = new Command("sweep", "Wall time of the default sweep (all methods on one task per group) as `peft sweep` processes with 1 worker x all " +
            "cores' threads and with N workers x 1 thread, fresh stores, alternating rounds; extrapolated to the 11-task sweep and the whole study.")
            { tasks, methods, profile, workers, rounds, studyPairs };
        cmd.SetAction((r, cancel) => Cli.Guard(() =>
        {
            var taskList = Cli.Split(r.GetValue(tasks));
            if (taskList.Count == 0) taskList = Suite.Groups.Select(g => Suite.Mini.Tasks.First(t => t.Group == g).Name).ToList();
            var methodList = Cli.Split(r.GetValue(methods));
            if (methodList.Count == 0 || methodList is ["all"]) methodList = Peft.MethodRegistry.All.Select(m => m.Id).ToList();
            int n = r.GetValue(workers) ?? WorkerPlan.MachineCores;
            var plans = new[] { (Workers: 1, Threads: WorkerPlan.MachineCores), (Workers: n, Threads: 1) };
            Console.WriteLine($"bench sweep: {methodList.Count} methods x {taskList.Count} tasks ({string.Join(", ", taskList)}), profile {r.GetValue(profile)}, " +
                $"{r.GetValue(rounds)} round(s); load {Cli.LoadAverage()}");
            var root = Path.Combine(Path.GetTempPath(), $"peft-bench-sweep-{System.Environment.ProcessId}");
            var runs = new List<SweepTiming>();
            using var term = new Termination(cancel);
            try
            {
                for (int round = 0; round < r.GetValue(rounds); round++)
                    foreach (var (w, th) in round % 2 == 0 ? plans : plans.Reverse())
                    {
                        var plan = WorkerPlan.For(w, th); // the wait policy by the load now
                        var store = Path.Combine(root, $"r{round}-w{plan.Workers}x{plan.Threads}");
                        var t = SweepBench.Time(Cli.SelfCommand(), "mini", taskList, methodList, r.GetValue(profile)!, plan, store, term.Token);
                        runs.Add(t);
                        Console.WriteLine($"  {plan.Describe(),-52} {t.Seconds,8:F1} s  {t.Trials,4} trials  load {t.LoadBefore} -> {t.LoadAfter}");
                    }
            }
            finally { if (Directory.Exists(root)) Directory.Delete(root, recursive: true); }
            foreach (var line in SweepBench.Table(runs, methodList.Count, r.GetValue(studyPairs)).SkipWhile(l => l.Length > 0)) Console.WriteLine(line);
            return Task.FromResult(0);
        }));
        return cmd;
    }

    static int BenchTrain(VitConfig config, int batch, int steps, int threads, CancellationToken cancel)
    {
        if (threads > 0) ThreadBudget.Pin(threads);
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
}
