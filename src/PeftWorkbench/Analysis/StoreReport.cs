using System.Diagnostics;
using Microsoft.Data.Analysis;
using PeftWorkbench.Plots;
using XPlot.Plotly;

namespace PeftWorkbench.Analysis;

/// <summary>What <see cref="StoreReport.Run"/> does: which store, where to write, and the optional robustness runs.</summary>
public sealed record StoreReportOptions
{
    /// <summary>null: only the paper's charts and the robustness runs.</summary>
    public string? StoreDir { get; init; }
    public required string OutDir { get; init; }
    public string? Profile { get; init; }
    /// <summary>Only this seed's trials; null: the store's one seed, or where it holds several, the seed with the most
    /// successful finals (the smallest of a tie), named in the log.</summary>
    public long? Seed { get; init; }
    /// <summary>Methods for the Venn diagrams (3 and 4 sets); default: the study's trio (lora, rand_h_adapter, ssf) where present.</summary>
    public IReadOnlyList<string>? VennMethods { get; init; }
    /// <summary>Methods fine-tuned from the zero-shot head for Figure 1c (none: skip the robustness runs).</summary>
    public IReadOnlyList<string> RobustnessMethods { get; init; } = Array.Empty<string>();
    public Training.TrainOptions? RobustnessTraining { get; init; }
}

/// <summary>
/// Every analysis of a results store in one call, as the CLI's `peft analyze` runs it: per task agreement (three
/// matrices, clustered heatmap), confident-set Venn regions (3 and 4 methods; least-confident wrong) beside the
/// study's, greedy ensembles (members chosen on val); across tasks ranks, Figure 1a (ours and the paper's), ours
/// beside the paper; optionally WiSE robustness curves. Tables go to CSV, charts to standalone HTML; each step is timed.
/// </summary>
public static class StoreReport
{
    public static readonly string[] StudyTrio = { "lora", "rand_h_adapter", "ssf" };

    public static IReadOnlyList<(string Step, double Seconds)> Run(StoreReportOptions o, Action<string>? log = null)
    {
        var w = new Writer(o.OutDir, log ?? Console.WriteLine);
        if (o.StoreDir is not null) StoreAnalyses(o, o.StoreDir, w);
        var paperScores = Paper.Vtab1kScores();
        w.Table("figure1a-paper", GainOverLinear.Table(paperScores), print: false);
        w.Save("figure1a-paper", Charts.GainOverLinear(paperScores, "Gain over linear probing per VTAB-1K task (the paper's numbers)"));
        w.Save("paper-robustness", Charts.PaperRobustness());
        if (o.RobustnessMethods.Count > 0) RobustnessRuns(o, w);
        w.Log($"\n== timings: wall s, process CPU s ({Environment.ProcessorCount} cores; load {Load()})");
        for (int i = 0; i < w.Timings.Count; i++) w.Log($"  {w.Timings[i].Item2,7:F2} {w.CpuSeconds[i],7:F2}  {w.Timings[i].Item1}");
        w.Log($"\nwrote tables (CSV) and charts (HTML) to {o.OutDir}");
        return w.Timings;
    }

    /// <summary>Where a report goes: CSV tables (printed too), HTML charts, timed steps.</summary>
    sealed class Writer
    {
        readonly string dir;
        public Action<string> Log { get; }
        public List<(string, double)> Timings { get; } = new();
        /// <summary>Process CPU seconds per step beside the wall seconds: on a shared machine the wall clock
        /// mostly measures the neighbours, CPU time what the step itself needed.</summary>
        public List<double> CpuSeconds { get; } = new();

        public Writer(string dir, Action<string> log) { this.dir = dir; Log = log; Directory.CreateDirectory(dir); }

        public T Timed<T>(string step, Func<T> f)
        {
            var clock = Stopwatch.StartNew();
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var r = f();
            Timings.Add((step, clock.Elapsed.TotalSeconds));
            CpuSeconds.Add((Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds);
            return r;
        }

        public void Table(string name, DataFrame df, bool print = true)
        {
            DataFrame.SaveCsv(df, PathOf(name, ".csv"));
            if (print) Log($"\n== {name}\n{Format(df)}");
        }

        public void Save(string name, PlotlyChart chart) => chart.SaveHtml(PathOf(name, ".html"), name);

        /// <summary>A file in the report folder for <paramref name="name"/> (task and method names come from a store):
        /// characters other than letters, digits, '.', '_' and '-' become '_', a leading '.' too, and a renamed name gets
        /// a digest of the original so two names never share a file. Never a path outside the folder.</summary>
        string PathOf(string name, string extension)
        {
            var safe = new string(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' ? c : '_').ToArray());
            if (safe.StartsWith('.')) safe = "_" + safe[1..];
            if (safe != name || safe.Length > 150)
                safe = safe[..Math.Min(safe.Length, 150)] + "-" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(name)))[..8];
            var path = Path.GetFullPath(Path.Combine(dir, safe + extension));
            if (Path.GetDirectoryName(path) != Path.GetFullPath(dir).TrimEnd(Path.DirectorySeparatorChar))
                throw new InvalidOperationException($"report file '{name}' would land outside {dir}");
            return path;
        }

        /// <summary>Runs one analysis; one that cannot be drawn from what the store holds is skipped with a note.</summary>
        public void OrSkip(string what, Action step)
        {
            try { step(); }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or InvalidDataException or FileNotFoundException)
            {
                Log($"\nskipped {what}: {e.Message}");
            }
        }
    }

    static void StoreAnalyses(StoreReportOptions o, string storeDir, Writer w)
    {
        long? seed = ChooseSeed(o, storeDir, w.Log);
        var tasks = Predictions.StoreFinals(storeDir, o.Profile, seed).Select(r => r.Config.Task).Distinct().OrderBy(t => Suite(t)).ToList();
        var ensembles = new List<EnsembleResult>();
        if (tasks.Count == 0) w.Log($"\nno successful final trials in {storeDir}{Predictions.Selection(o.Profile, seed)}: only the paper's charts follow.");
        foreach (var task in tasks) w.OrSkip($"task {task}", () =>
        {
            var (test, val) = w.Timed($"{task}: load predictions (test, val)", () =>
                (Predictions.Load(storeDir, task, "test", profile: o.Profile, seed: seed), Predictions.Load(storeDir, task, "val", profile: o.Profile, seed: seed)));
            w.Log($"\n#### {task}: {test.Methods.Count} methods, {test.Count} test / {val.Count} val samples");
            var trio = (o.VennMethods ?? StudyTrio).Where(test.Names.Contains).Take(3).ToList();
            if (trio.Count < 3) trio = test.Names.Where(m => m is not "linear" and not "full").Take(3).ToList();
            var four = trio.Concat(test.Names.Where(m => !trio.Contains(m) && m is not "linear")).Take(4).ToList();
            // Venns need 3 and 4 methods; with fewer they are skipped (below), the rest still runs.
            bool three = trio.Count == 3, fourSets = four.Count == 4;
            // Timed together: the issue's "agreement, confident sets and ensembles over all methods of one task".
            var (identical, jaccard, conditional, order, venn3, venn4, wrong3, results) = w.Timed(
                $"{task}: agreement (3 matrices) + clustering + Venn (3, 4, least-confident) + greedy ensembles (3 rules) over {test.Methods.Count} methods", () =>
                {
                    var id = Agreement.Identical(test);
                    return (id, Agreement.WrongJaccard(test), Agreement.WrongGivenWrong(test), Agreement.ClusterOrder(id),
                        three ? ConfidentSets.CorrectAmongMostConfident(test, trio) : null, fourSets ? ConfidentSets.CorrectAmongMostConfident(test, four) : null,
                        three ? ConfidentSets.WrongAmongLeastConfident(test, trio) : null,
                        Enum.GetValues<EnsembleRule>().Select(rule => Ensembles.Greedy(val, test, rule)).ToList());
                });
            ensembles.AddRange(results);

            w.Table($"{task}-identical", identical.Reorder(order).ToDataFrame());
            w.Table($"{task}-wrong-jaccard", jaccard.Reorder(order).ToDataFrame(), print: false);
            w.Table($"{task}-wrong-given-wrong", conditional.Reorder(order).ToDataFrame(), print: false);
            w.Table($"{task}-pairs", Agreement.Pairs(test), print: false);
            w.Save($"{task}-identical-heatmap", Charts.Heatmap(identical, title: $"{task}: share of identical predictions (clustered)"));
            w.Save($"{task}-wrong-jaccard-heatmap", Charts.Heatmap(jaccard, title: $"{task}: Jaccard of wrong predictions (clustered)"));
            if (venn3 is not null && wrong3 is not null)
            {
                w.Table($"{task}-venn3", trio.SequenceEqual(StudyTrio) ? venn3.Beside(ConfidentSets.StudyCifar100) : venn3.ToDataFrame());
                w.Table($"{task}-least-confident-wrong", wrong3.ToDataFrame());
                w.Save($"{task}-venn3", Charts.Venn3(venn3, ConfidentSets.StudyCifar100, $"{task}: {venn3.What}<br>(the study's CIFAR-100 count in brackets)"));
            }
            else w.Log($"\nskipped {task}: Venn of 3 methods (the store has {trio.Count} PEFT method(s) with predictions there)");
            if (venn4 is not null)
            {
                w.Table($"{task}-venn4", venn4.ToDataFrame(), print: false);
                w.Save($"{task}-upset4", Charts.UpSet(venn4, null, $"{task}: {venn4.What}"));
            }
            else w.Log($"\nskipped {task}: UpSet of 4 methods (the store has {four.Count} method(s) besides linear there)");
        });
        w.OrSkip("ensembles", () =>
        {
            w.Table("ensembles", Ensembles.Table(ensembles));
            w.Table("ensemble-group-gains", Ensembles.GroupGains(ensembles));
            w.Save("ensembles", Charts.EnsembleGains(ensembles));
        });

        w.OrSkip("ranks, Figure 1a and the paper beside ours", () =>
        {
            var scores = w.Timed("ranks (store)", () => Ranks.FromStore(storeDir, o.Profile, seed: seed));
            w.OrSkip("ranks", () =>
            {
                w.Table("ranks-per-task", Ranks.PerTask(scores), print: false);
                w.Table("rank-frequency", Ranks.RankFrequency(scores), print: false);
                w.Table("mean-rank", Ranks.MeanRank(scores));
                w.Save("mean-rank", Charts.MeanRank(scores));
            });
            w.OrSkip("Figure 1a (ours)", () =>
            {
                w.Table("figure1a-ours", GainOverLinear.Table(scores));
                w.Save("figure1a-ours", Charts.GainOverLinear(scores, "Gain over linear probing per mini task (ours, default profile)"));
            });
            w.OrSkip("the paper beside ours", () =>
            {
                w.Table("beside-paper", Paper.Beside(scores));
                w.Save("beside-paper", Charts.BesidePaper(scores));
            });
        });
    }

    /// <summary>The seed to analyse: the one asked for (refused, naming the store's seeds, when it has no finals there),
    /// else null when the store's finals share one seed, else the seed with the most finals (the smallest of a tie), said
    /// in the log. Mixing seeds would give a method two finals per task.</summary>
    static long? ChooseSeed(StoreReportOptions o, string storeDir, Action<string> log)
    {
        var bySeed = Predictions.StoreFinals(storeDir, o.Profile).GroupBy(r => r.Config.Seed)
            .Select(g => (Seed: g.Key, Finals: g.Count())).OrderByDescending(s => s.Finals).ThenBy(s => s.Seed).ToList();
        string seeds = string.Join(", ", bySeed.Select(s => $"{s.Seed} ({s.Finals} finals)"));
        if (o.Seed is long asked)
            return bySeed.Any(s => s.Seed == asked) || bySeed.Count == 0 ? asked : throw new ArgumentException(
                $"Results store {storeDir}: no successful final trial with seed {asked}{Predictions.Selection(o.Profile, null)}; seeds there: {seeds}.");
        if (bySeed.Count <= 1) return null;
        log($"\nthe store holds {bySeed.Count} seeds{Predictions.Selection(o.Profile, null)}: {seeds}; analysing seed {bySeed[0].Seed} " +
            "(the most finals); pass --seed to choose another.");
        return bySeed[0].Seed;
    }

    static void RobustnessRuns(StoreReportOptions o, Writer w)
    {
        {
            var (target, shifts) = Robustness.EvalSets();
            try
            {
                var curves = new List<WiseCurve>();
                foreach (var m in o.RobustnessMethods)
                {
                    using var run = w.Timed($"robustness: fine-tune {m} from the zero-shot head", () => Robustness.FineTune(m, o.RobustnessTraining));
                    curves.Add(w.Timed($"robustness: WiSE curve of {m} (11 alphas x target + {shifts.Count} shift sets, {target.Count + shifts.Values.Sum(s => s.Count)} images)",
                        () => Wise.Curve(run.Model, run.ZeroShotHead, target, shifts, task: Robustness.Task)));
                }
                w.Table("robustness-wise", Robustness.Table(curves));
                w.Save("robustness", Charts.Robustness(curves));
            }
            finally { target.Dispose(); foreach (var s in shifts.Values) s.Dispose(); }
        }
    }

    static string Load() => File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    static int Suite(string task) => Data.Suite.Groups.ToList().IndexOf(Ranks.GroupOf(task)) is var i && i < 0 ? 99 : i;

    /// <summary>A DataFrame as aligned text (numbers to 3 decimals), every row.</summary>
    public static string Format(DataFrame df)
    {
        var cols = df.Columns.ToList();
        string Cell(object? v) => v switch { null => "-", double d => double.IsNaN(d) ? "NaN" : d.ToString("0.###"), float f => f.ToString("0.###"), _ => v.ToString() ?? "" };
        var cells = Enumerable.Range(0, (int)df.Rows.Count).Select(i => cols.Select(c => Cell(c[i])).ToArray()).ToList();
        var widths = cols.Select((c, j) => Math.Max(c.Name.Length, cells.Select(r => r[j].Length).DefaultIfEmpty(0).Max())).ToArray();
        var sb = new System.Text.StringBuilder();
        sb.AppendLine(string.Join("  ", cols.Select((c, j) => c.Name.PadLeft(widths[j]))));
        foreach (var r in cells) sb.AppendLine(string.Join("  ", r.Select((v, j) => v.PadLeft(widths[j]))));
        return sb.ToString().TrimEnd();
    }
}
