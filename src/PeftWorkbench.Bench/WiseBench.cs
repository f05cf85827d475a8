using System.Diagnostics;
using PeftWorkbench.Analysis;
using PeftWorkbench.Training;

namespace PeftWorkbench.Bench;

/// <summary>One timed WiSE curve: which path, wall seconds, process CPU seconds.</summary>
public sealed record WiseTiming(string Method, string Path, int Round, double WallSeconds, double CpuSeconds);

/// <summary>
/// `peft bench wise`: the robustness WiSE curve (11 alphas over MNIST test and the 4 shift sets) timed on the
/// reference path (<see cref="Wise.CurvePlain"/>) and the fast one (<see cref="Wise.Curve"/>) in alternating rounds,
/// on models fine-tuned briefly from the zero-shot head (the cost of a curve does not depend on how well the model
/// learned). Each round also checks that both paths give the same top-1 at every alpha.
/// </summary>
public static class WiseBench
{
    /// <summary>`peft bench wise`: the rounds, then the medians, each beside the machine's load.</summary>
    public static void Print(IReadOnlyList<string> methods, int rounds, int epochs, int batchSize, Action<string> log)
    {
        if (rounds < 1 || epochs < 1 || batchSize < 1) throw new ArgumentException($"--rounds, --epochs and --batch must be positive (got {rounds}, {epochs}, {batchSize}).");
        log($"bench wise: {string.Join(", ", methods)}, {rounds} rounds; load average {SweepBench.LoadAverage()}");
        var timings = Run(methods, rounds, epochs, batchSize, line => log("  " + line));
        log($"medians (load average {SweepBench.LoadAverage()}):");
        foreach (var line in Summary(timings)) log("  " + line);
    }

    public static IReadOnlyList<WiseTiming> Run(IReadOnlyList<string> methods, int rounds, int epochs, int batchSize, Action<string> log)
    {
        var (target, shifts) = Robustness.EvalSets();
        var timings = new List<WiseTiming>();
        try
        {
            log($"{target.Count + shifts.Values.Sum(s => s.Count)} images per alpha ({target.Count} MNIST test + {string.Join(" + ", shifts.Select(kv => $"{kv.Value.Count} {kv.Key}"))}), " +
                $"{Wise.DefaultAlphas.Count} alphas, batch {batchSize}, {TorchSharp.torch.get_num_threads()} torch threads");
            foreach (var m in methods)
            {
                using var run = Robustness.FineTune(m, Robustness.DefaultTraining with { Epochs = epochs, WarmupEpochs = 0 });
                for (int r = 1; r <= rounds; r++)
                {
                    // Alternate which path goes first, so a drift in the machine's load falls on both.
                    var order = r % 2 == 1 ? new[] { "plain", "fast" } : new[] { "fast", "plain" };
                    var curves = new Dictionary<string, WiseCurve>();
                    foreach (var path in order)
                    {
                        var (t, curve) = Time(m, path, r, () => path == "plain"
                            ? Wise.CurvePlain(run.Model, run.ZeroShotHead, target, shifts, batchSize: batchSize)
                            : Wise.Curve(run.Model, run.ZeroShotHead, target, shifts, batchSize: batchSize));
                        curves[path] = curve;
                        timings.Add(t);
                        log($"{m} round {r} {path,-5}: {t.WallSeconds,6:F1} s wall, {t.CpuSeconds,6:F1} CPU-s (load {Load()})");
                    }
                    var differ = curves["plain"].Points.Zip(curves["fast"].Points).Where(p => p.First.Target != p.Second.Target || p.First.MeanShift != p.Second.MeanShift).ToList();
                    if (differ.Count > 0) log($"{m} round {r}: top-1 differs at alpha {string.Join(", ", differ.Select(d => d.First.Alpha))}");
                }
            }
            return timings;
        }
        finally { target.Dispose(); foreach (var s in shifts.Values) s.Dispose(); }
    }

    /// <summary>Median wall and CPU seconds per method and path, and fast/plain ratios.</summary>
    public static IEnumerable<string> Summary(IReadOnlyList<WiseTiming> timings)
    {
        static double Median(IEnumerable<double> xs) => IoBench.Median(xs);
        yield return $"{"method",-12} {"plain wall",10} {"fast wall",10} {"plain CPU",10} {"fast CPU",10} {"fast/plain CPU",15}";
        foreach (var g in timings.GroupBy(t => t.Method))
        {
            double pw = Median(g.Where(t => t.Path == "plain").Select(t => t.WallSeconds)), fw = Median(g.Where(t => t.Path == "fast").Select(t => t.WallSeconds));
            double pc = Median(g.Where(t => t.Path == "plain").Select(t => t.CpuSeconds)), fc = Median(g.Where(t => t.Path == "fast").Select(t => t.CpuSeconds));
            yield return $"{g.Key,-12} {pw,10:F1} {fw,10:F1} {pc,10:F1} {fc,10:F1} {fc / pc,15:F2}";
        }
    }

    static (WiseTiming, WiseCurve) Time(string method, string path, int round, Func<WiseCurve> f)
    {
        using var proc = Process.GetCurrentProcess();
        var cpu0 = proc.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var curve = f();
        double wall = clock.Elapsed.TotalSeconds;
        proc.Refresh();
        return (new WiseTiming(method, path, round, wall, (proc.TotalProcessorTime - cpu0).TotalSeconds), curve);
    }

    static string Load() => File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";
}
