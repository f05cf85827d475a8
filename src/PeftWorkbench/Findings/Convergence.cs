using System.Globalization;
using System.Text.Json;
using Microsoft.Data.Analysis;
using PeftWorkbench.Data;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Findings;

/// <summary>Where a curve was heading over its last quarter of epochs.</summary>
public enum Trend { Improving, Flat, Worsening, Unknown }

/// <summary>One protocol run (a method on a task): its tune trials, the one selected, its final, and after a rung the
/// selection's full run on train800 (<paramref name="Val"/>; null otherwise).</summary>
public sealed record RunTrials(string Task, string Method, IReadOnlyList<TrialRecord> Tuning, TrialRecord? Selected, TrialRecord? Final,
    TrialRecord? Val = null)
{
    /// <summary>A run of <see cref="Study.Run"/> (under <paramref name="task"/>, a label, where given), with the selection's
    /// full run after a rung.</summary>
    public static RunTrials Of(StudyRun r, string? task = null) =>
        new(task ?? r.Task, r.Method, r.Tuning, r.Selected, r.Final, r.Val is { } v && v.Key != r.Selected?.Key ? v : null);

    /// <summary>Every run in a store's records: each final with the tune trials of the same task, method, profile, protocol,
    /// seed, training-set size, rung and epochs, the tune trial it retrained, and its full run after a rung. A store that
    /// holds several finals of one run gives the one of the profile's own grid as the profile runs it now
    /// (<see cref="ProfileFinalKeys"/>): not notebook 06's grid or a `--hp` run of the same pair finished later, and not a
    /// stale final of an older grid or schedule. With none of those, the one finished last.</summary>
    public static IReadOnlyList<RunTrials> FromRecords(IEnumerable<TrialRecord> records)
    {
        var all = records.ToList();
        static (string, string, string, string, long, int?) Id(TrialConfig c) => (c.Task, c.Method, c.Profile, c.Protocol, c.Seed, c.TrainImages);
        var tunes = all.Where(r => r.Config.Phase == "tune").ToLookup(r => Id(r.Config));
        var vals = all.Where(r => r.Config.Phase == "val").GroupBy(r => r.Key).ToDictionary(g => g.Key, g => g.Last());
        // A retried final of the same key finished later too, so the last finished among the candidates covers both.
        var finals = all.Where(r => r.Config.Phase == "final").GroupBy(r => Id(r.Config)).Select(g =>
        {
            var own = ProfileFinalKeys(g.First().Config);
            return (g.Where(r => own.Contains(r.Key)).MaxBy(r => r.FinishedUtc) ?? g.MaxBy(r => r.FinishedUtc))!;
        });
        return finals.Select(f =>
        {
            var tuning = tunes[Id(f.Config)].Where(t => t.Config.Rung == f.Config.Rung && t.Config.Epochs == f.Config.Epochs).ToList();
            var selected = tuning.FirstOrDefault(t => t.Key == (f.Config with { Phase = "tune", TuneGrid = null }).Key);
            var val = f.Config.Rung is null ? null : vals.GetValueOrDefault((f.Config with { Phase = "val" }).Key);
            return new RunTrials(f.Config.Task, f.Config.Method, tuning, selected, f, val);
        }).ToList();
    }

    /// <summary>The keys the final of <paramref name="c"/>'s run has under its profile's own grid and schedule today, one per
    /// task group (the group sets a VTAB-1K schedule and a many-shot recipe, and a store's records do not name it); empty
    /// for a profile or method this build does not know.</summary>
    static HashSet<string> ProfileFinalKeys(TrialConfig c)
    {
        var keys = new HashSet<string>(StringComparer.Ordinal);
        if (Profiles.Find(c.Profile) is not { } p || !Peft.MethodRegistry.All.Any(m => m.Id == c.Method)) return keys;
        foreach (var group in Suite.Groups)
        {
            try
            {
                var o = ProtocolOptions.For(p.Name, c.Protocol, group, seed: c.Seed, trainImages: c.TrainImages);
                keys.Add(Protocol.FinalKey(c.Task, c.Method, o, Protocol.TuneConfigs(c.Task, c.Method, p.Grid(c.Method), o).Select(t => t.Key)));
            }
            catch (ArgumentException) { } // a protocol or size this profile cannot run: no final of its own grid
        }
        return keys;
    }
}

/// <summary>
/// The diagnostics of one run: the curve trends (selected tune trial, after a rung its full run: val top-1 where it was
/// evaluated more than once, else its training loss; final: its training loss), whether the selected lr/wd sits on an edge of the values tried,
/// tune trials at chance level, and the final's test top-1 against its selected val top-1.
/// </summary>
public sealed record RunDiagnosis(string Task, string Method, double? SelectedLr, double? SelectedWd, string Edge,
    Trend Tune, string TuneCurve, Trend Final, int TuneTrials, int AtChance, bool SelectedAtChance, double? Val, double? Test)
{
    public double? TestMinusVal => Test - Val;
    /// <summary>Whether the run had settled: its selected tune trial's val200 curve where one was kept (the final trains the
    /// same configuration for as long, on train800val200, with no held-out set), else the final's training loss, which
    /// near zero keeps falling long after val200 has settled.</summary>
    public Trend Settling => OnVal ? Tune : Final;
    /// <summary>Whether <see cref="Settling"/> reads a val curve.</summary>
    public bool OnVal => TuneCurve == "val top-1";
}

/// <summary>Whether the diagnostics vouch for a set of runs, and if not, why (a clause for a claim's note).</summary>
public sealed record BudgetReading(bool Trusted, string Why)
{
    public static BudgetReading Unchecked { get; } = new(true, "");
}

/// <summary>
/// Convergence diagnostics over any set of runs (issue 27): per run, whether training was still improving when it
/// stopped, whether the selection sits on an edge of its grid, tune trials at chance level (chance = 1 / classes),
/// and test against val; for the set, the share of selections at each lr beside the study's share for the same
/// methods, and one computed sentence. A record written before curves were kept reads "unknown", never a guess.
/// </summary>
public sealed class Convergence
{
    /// <summary>A drop of the training loss over the last quarter by more than this share of its value counts as improving.</summary>
    public const double LossTolerance = 0.02;
    /// <summary>A val top-1 gain over the last quarter by more than this many points counts as improving.</summary>
    public const double Top1Tolerance = 1.0;
    /// <summary>Runs not vouched for (still improving, worsening or unknown) above this share make a budget untrusted.</summary>
    public const double UntrustedShare = 0.25;

    public IReadOnlyList<RunDiagnosis> Runs { get; }
    /// <summary>lr, ours (selections), ours_pct, study (selections of the same methods on VTAB-1K), study_pct.</summary>
    public IReadOnlyList<(double Lr, int Ours, int Study)> LrShares { get; }

    Convergence(IReadOnlyList<RunDiagnosis> runs, IReadOnlyList<(double, int, int)> shares) { Runs = runs; LrShares = shares; }

    /// <summary>The runs of <see cref="Study.RunAll"/>.</summary>
    public static Convergence Of(IEnumerable<StudyRun> runs, int valSize = 200) =>
        Of(runs.Select(r => RunTrials.Of(r)), valSize: valSize);

    /// <summary>Every run in a store's records: finals with the tune trials of the same task, method, profile, protocol and seed.</summary>
    public static Convergence Of(IEnumerable<TrialRecord> records, int valSize = 200) => Of(RunTrials.FromRecords(records), valSize: valSize);

    /// <param name="classesOf">Classes of a task (chance = 1 / classes); default: the mini suite's table (unknown tasks: no chance check).</param>
    /// <param name="valSize">Samples a tune trial is scored on (VTAB-1K: val200), for the chance band.</param>
    public static Convergence Of(IEnumerable<RunTrials> runs, Func<string, int?>? classesOf = null, int valSize = 200)
    {
        classesOf ??= t => Suite.Mini.Tasks.FirstOrDefault(x => x.Name == t)?.NumClasses;
        var list = runs.Select(r => Diagnose(r, classesOf(r.Task), valSize)).ToList();
        var methods = list.Select(r => r.Method).ToHashSet();
        var study = StudyLrSelections().Where(s => methods.Contains(s.Method)).ToList();
        var lrs = list.Where(r => r.SelectedLr is not null).Select(r => r.SelectedLr!.Value).Concat(study.Select(s => s.Lr)).Distinct().Order();
        var shares = lrs.Select(lr => (lr, list.Count(r => r.SelectedLr == lr), study.Count(s => s.Lr == lr))).ToList();
        return new Convergence(list, shares);
    }

    static RunDiagnosis Diagnose(RunTrials r, int? classes, int valSize)
    {
        var sel = r.Selected;
        // After a rung the selected tune trial stopped early: its full run on train800 is the curve and the val score.
        var full = r.Val ?? sel;
        var (tune, basis) = full is null ? (Trend.Unknown, "none selected") : TuneTrend(full);
        var final = r.Final?.LossCurve is { } fl ? LossTrend(fl) : Trend.Unknown;
        int chance = classes is int k ? r.Tuning.Count(t => AtChance(t, k, valSize)) : 0;
        bool selChance = full is not null && classes is int k2 && AtChance(full, k2, valSize);
        var ok = r.Tuning.Where(t => t.Ok).ToList();
        string Edge(string axis, Func<TrialConfig, double> v)
        {
            var values = ok.Select(t => v(t.Config)).Distinct().ToList();
            if (sel is null || values.Count < 2) return "";
            double x = v(sel.Config);
            return x == values.Max() ? $"{axis} highest" : x == values.Min() ? $"{axis} lowest" : "";
        }
        var edge = string.Join(", ", new[] { Edge("lr", c => c.Lr), Edge("wd", c => c.WeightDecay) }.Where(e => e.Length > 0));
        return new RunDiagnosis(r.Task, r.Method, sel?.Config.Lr, sel?.Config.WeightDecay, edge, tune, basis, final,
            r.Tuning.Count, chance, selChance, full?.Top1Last, r.Final is { Ok: true } f ? f.Top1Last : null);
    }

    static (Trend, string) TuneTrend(TrialRecord t)
    {
        var evals = t.EvalCurve?.Where(v => v is not null).Select(v => v!.Value).ToArray();
        if (evals is { Length: >= 2 }) return (Top1Trend(evals), "val top-1");
        return t.LossCurve is { } l ? (LossTrend(l), "train loss") : (Trend.Unknown, "no curve on record");
    }

    /// <summary>The trend of a training-loss curve over its last quarter (at least one epoch): a relative drop above
    /// <see cref="LossTolerance"/> is improving, a rise above it worsening; fewer than 2 epochs: unknown.</summary>
    public static Trend LossTrend(IReadOnlyList<double> loss)
    {
        if (loss.Count < 2) return Trend.Unknown;
        double start = loss[loss.Count - 1 - Quarter(loss.Count)], end = loss[^1];
        double change = (start - end) / Math.Max(Math.Abs(start), 1e-12);
        return change > LossTolerance ? Trend.Improving : change < -LossTolerance ? Trend.Worsening : Trend.Flat;
    }

    /// <summary>The trend of a top-1 curve (percent) over its last quarter: a gain above <see cref="Top1Tolerance"/> points is improving.</summary>
    public static Trend Top1Trend(IReadOnlyList<double> top1)
    {
        if (top1.Count < 2) return Trend.Unknown;
        double change = top1[^1] - top1[top1.Count - 1 - Quarter(top1.Count)];
        return change > Top1Tolerance ? Trend.Improving : change < -Top1Tolerance ? Trend.Worsening : Trend.Flat;
    }

    static int Quarter(int n) => Math.Max(1, n / 4);

    /// <summary>Top-1 (percent) within two binomial standard deviations of chance (1 / classes) on <paramref name="n"/> samples.</summary>
    public static double ChanceBand(int classes, int n)
    {
        double c = 1.0 / classes;
        return 100 * (c + 2 * Math.Sqrt(c * (1 - c) / n));
    }

    /// <summary>An ok tune trial whose val top-1 is within <see cref="ChanceBand"/>, or one that diverged or failed.</summary>
    public static bool AtChance(TrialRecord t, int classes, int n) => !t.Ok || t.Top1Last!.Value <= ChanceBand(classes, n);

    /// <summary>The study's selected lr per method and task (vtab1k_results.csv's selected_hyperparameters).</summary>
    public static IReadOnlyList<(string Method, string Task, double Lr)> StudyLrSelections() =>
        Analysis.Paper.Read("vtab1k_results.csv").Select(r =>
        {
            using var doc = JsonDocument.Parse(r["selected_hyperparameters"]);
            return (r["method"], r["task"], doc.RootElement.GetProperty("lr").GetDouble());
        }).ToList();

    int Count(Func<RunDiagnosis, bool> f) => Runs.Count(f);

    /// <summary>What the settling reads: "val200 over the last quarter", "the final's training loss over the last quarter", or both with counts.</summary>
    string Basis()
    {
        int onVal = Count(r => r.OnVal), n = Runs.Count;
        const string val = "val top-1 of the selected configuration trained for its whole schedule, over its last quarter", loss = "the final's training loss over its last quarter";
        return onVal == n ? val : onVal == 0 ? loss : $"{val} for {onVal}, {loss} for {n - onVal}";
    }

    /// <summary>Whether the claims over these runs can be read as the budget's final word (see <see cref="UntrustedShare"/>).</summary>
    public BudgetReading Reading()
    {
        int n = Runs.Count;
        if (n == 0) return new BudgetReading(false, "no runs to diagnose");
        int open = Count(r => r.Settling != Trend.Flat), unknown = Count(r => r.Settling == Trend.Unknown), chance = Count(r => r.SelectedAtChance);
        if (chance > 0) return new BudgetReading(false, $"{chance} of {n} selected tune trials sat at chance level");
        if (open > UntrustedShare * n)
            return new BudgetReading(false, unknown == n ? "convergence unknown (no training curve on record, or one epoch)"
                : $"{open} of {n} runs had not settled (still improving, worsening or unknown; {Basis()})");
        return new BudgetReading(true, "");
    }

    /// <summary>The diagnostics in one computed sentence.</summary>
    public string Sentence()
    {
        int n = Runs.Count;
        if (n == 0) return "No runs to diagnose.";
        int up = Count(r => r.Settling == Trend.Improving), down = Count(r => r.Settling == Trend.Worsening), unknown = Count(r => r.Settling == Trend.Unknown);
        var parts = new List<string>();
        if (unknown == n) parts.Add($"whether the {n} runs had converged is unknown (their records hold no curve, or one epoch)");
        else
        {
            parts.Add(up > 0 ? $"{up} of {n} runs were still improving when training stopped ({Basis()}): read their numbers as lower bounds"
                : $"none of the {n} runs was still improving when training stopped ({Basis()})");
            if (down > 0) parts.Add($"{down} got worse over their last quarter");
            if (unknown > 0) parts.Add($"{unknown} have no curve on record (unknown)");
        }
        int hi = Count(r => r.Edge.Contains("lr highest")), lo = Count(r => r.Edge.Contains("lr lowest"));
        if (hi + lo > 0) parts.Add($"{hi} selections took the highest lr tried and {lo} the lowest (an edge of the grid: the best lr may lie beyond it)");
        int trials = Runs.Sum(r => r.TuneTrials), chance = Runs.Sum(r => r.AtChance), selChance = Count(r => r.SelectedAtChance);
        if (chance > 0) parts.Add($"{chance} of {trials} tune trials sat at chance level{(selChance > 0 ? $", {selChance} of them selected" : "")}");
        var gaps = Runs.Where(r => r.TestMinusVal is not null).Select(r => r.TestMinusVal!.Value).ToList();
        if (gaps.Count > 0) parts.Add($"finals test {Math.Abs(gaps.Average()):F1} points {(gaps.Average() >= 0 ? "above" : "below")} their selected val on average");
        var s = string.Join("; ", parts);
        return char.ToUpperInvariant(s[0]) + s[1..] + ".";
    }

    /// <summary>task, method, lr, wd, edge, tune trend (and its curve), final trend, tune trials at chance, val, test, test - val.</summary>
    public DataFrame Table() => new(
        new StringDataFrameColumn("task", Runs.Select(r => r.Task)), new StringDataFrameColumn("method", Runs.Select(r => r.Method)),
        new StringDataFrameColumn("lr", Runs.Select(r => r.SelectedLr is double x ? x.ToString("G3", CultureInfo.InvariantCulture) : "")),
        new StringDataFrameColumn("edge", Runs.Select(r => r.Edge)),
        new StringDataFrameColumn("tune", Runs.Select(r => $"{Word(r.Tune)} ({r.TuneCurve})")),
        new StringDataFrameColumn("final (train loss)", Runs.Select(r => Word(r.Final))),
        new StringDataFrameColumn("tune at chance", Runs.Select(r => $"{r.AtChance} of {r.TuneTrials}" + (r.SelectedAtChance ? " (selected)" : ""))),
        new PrimitiveDataFrameColumn<double>("val", Runs.Select(r => Verdicts.Round(r.Val))),
        new PrimitiveDataFrameColumn<double>("test", Runs.Select(r => Verdicts.Round(r.Test))),
        new PrimitiveDataFrameColumn<double>("test - val", Runs.Select(r => Verdicts.Round(r.TestMinusVal))));

    /// <summary>lr, ours, ours_pct, study, study_pct: the share of selections at each lr, ours beside the study's (same methods).</summary>
    public DataFrame LrTable()
    {
        int n = Math.Max(1, LrShares.Sum(s => s.Ours)), m = Math.Max(1, LrShares.Sum(s => s.Study));
        return new DataFrame(
            new StringDataFrameColumn("lr", LrShares.Select(s => s.Lr.ToString("G3", CultureInfo.InvariantCulture))),
            new PrimitiveDataFrameColumn<int>("ours", LrShares.Select(s => s.Ours)),
            new PrimitiveDataFrameColumn<double>("ours_pct", LrShares.Select(s => Verdicts.Round(100.0 * s.Ours / n))),
            new PrimitiveDataFrameColumn<int>("study", LrShares.Select(s => s.Study)),
            new PrimitiveDataFrameColumn<double>("study_pct", LrShares.Select(s => Verdicts.Round(100.0 * s.Study / m))));
    }

    public static string Word(Trend t) => t switch
    {
        Trend.Improving => "still improving", Trend.Flat => "settled", Trend.Worsening => "worsening", _ => "unknown",
    };
}
