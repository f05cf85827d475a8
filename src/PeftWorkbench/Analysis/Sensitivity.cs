using System.Globalization;
using Microsoft.Data.Analysis;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Analysis;

/// <summary>One point of a sensitivity curve: with hyperparameter <paramref name="Axis"/> at <paramref name="Value"/>,
/// the best val200 top-1 over the grid's other axes (tune the rest, fix this one); for the paper, that best per task,
/// averaged over <paramref name="Tasks"/> tasks.</summary>
public sealed record SensitivityPoint(string Axis, string Value, double Top1, int Tasks);

/// <summary>
/// How much val200 accuracy moves along each hyperparameter of a grid: ours from the tune trials of a run, the paper's
/// from its tuning grid (Paper.TuningGrid, every configuration the study tried on VTAB-1K). Only axes with two or more
/// values are curves. Values are compared as numbers ("0.001" = "1e-3"), so ours and the paper's line up.
/// </summary>
public static class Sensitivity
{
    /// <summary>Our curves from a run's tune trials (diverged and failed trials left out). Trials stopped at a rung are
    /// refused: their val top-1 is read a fraction of the way through training (run with Study.Run's fullGrid).</summary>
    public static IReadOnlyList<SensitivityPoint> FromTrials(IEnumerable<TrialRecord> tuning)
    {
        var tune = tuning.Where(t => t.Config.Phase == "tune").ToList();
        if (tune.FirstOrDefault(t => t.Config.Rung is not null) is { } stopped)
            throw new ArgumentException($"Sensitivity: tune trial {stopped.Key} stopped at the rung (epoch {stopped.Config.Rung}), so its val top-1 " +
                "is not the end of training. Run the grid with every point trained in full: Study.Run(..., fullGrid: true).", nameof(tuning));
        return Ordered(Curves(tune.Where(t => t.Ok).Select(t => (Axes(t.Config), t.Top1Last!.Value)), tasks: 1));
    }

    /// <summary>The paper's curves for a method: per task, the best val200 top-1 at each value of each axis; then the mean
    /// over the tasks of <paramref name="group"/> (null: all 19).</summary>
    public static IReadOnlyList<SensitivityPoint> FromPaper(string method, string? group = null)
    {
        var id = Peft.MethodRegistry.Get(method).Id;
        var rows = Paper.Read("vtab1k_tuning_grid.csv").Where(r => r["method"] == id && (group is null || r["group"] == group)).ToList();
        if (rows.Count == 0) throw new ArgumentException($"The paper's tuning grid has no rows for method '{id}'{(group is null ? "" : $" in group '{group}'")}.");
        var perTask = rows.GroupBy(r => r["task"]).SelectMany(task => Curves(task.Select(r => (PaperHp(r["hyperparameters"]), double.Parse(r["val200_top1"], CultureInfo.InvariantCulture))), tasks: 1));
        return Ordered(perTask.GroupBy(p => (p.Axis, p.Value)).Select(g => new SensitivityPoint(g.Key.Axis, g.Key.Value, g.Average(p => p.Top1), g.Count())));
    }

    /// <summary>The axes both curves share, value by value: axis, value, ours, paper (null where one lacks the value).</summary>
    public static DataFrame Beside(IReadOnlyList<SensitivityPoint> ours, IReadOnlyList<SensitivityPoint> paper)
    {
        var axes = ours.Select(p => p.Axis).Distinct().Where(a => paper.Any(p => p.Axis == a)).ToList();
        var rows = Ordered(axes.SelectMany(a => ours.Concat(paper).Where(p => p.Axis == a).Select(p => p.Value).Distinct()
            .Select(v => new SensitivityPoint(a, v, 0, 0)))).ToList();
        double? Find(IReadOnlyList<SensitivityPoint> pts, SensitivityPoint r) => pts.FirstOrDefault(p => p.Axis == r.Axis && p.Value == r.Value)?.Top1 is double x ? Math.Round(x, 2) : null;
        return new DataFrame(new StringDataFrameColumn("axis", rows.Select(r => r.Axis)), new StringDataFrameColumn("value", rows.Select(r => r.Value)),
            new PrimitiveDataFrameColumn<double>("ours", rows.Select(r => Find(ours, r))), new PrimitiveDataFrameColumn<double>("paper", rows.Select(r => Find(paper, r))));
    }

    /// <summary>Best minus worst top-1 along an axis, over <paramref name="values"/> only when given (e.g. the values both tried).</summary>
    public static double Range(IReadOnlyList<SensitivityPoint> curve, string axis, IEnumerable<string>? values = null)
    {
        var set = values?.ToHashSet();
        var pts = curve.Where(p => p.Axis == axis && (set is null || set.Contains(p.Value))).ToList();
        return pts.Count == 0 ? double.NaN : pts.Max(p => p.Top1) - pts.Min(p => p.Top1);
    }

    /// <summary>The value with the highest top-1 along an axis (the first of ties, in value order); null if the axis is absent.</summary>
    public static SensitivityPoint? Best(IReadOnlyList<SensitivityPoint> curve, string axis, IEnumerable<string>? values = null)
    {
        var set = values?.ToHashSet();
        return curve.Where(p => p.Axis == axis && (set is null || set.Contains(p.Value))).OrderByDescending(p => p.Top1).FirstOrDefault();
    }

    /// <summary>
    /// Per axis both have, two sentences computed from the curves: whether our best value is the paper's best (among the
    /// values both tried, when ours is not in the paper's grid), and whether our curve is flatter or steeper than the
    /// paper's over the values both tried (best minus worst, in points).
    /// </summary>
    public static IEnumerable<string> Compare(IReadOnlyList<SensitivityPoint> ours, IReadOnlyList<SensitivityPoint> paper)
    {
        static string F(double x) => x.ToString("F1", CultureInfo.InvariantCulture);
        foreach (var axis in ours.Select(p => p.Axis).Distinct().Where(a => paper.Any(p => p.Axis == a)))
        {
            var common = ours.Where(p => p.Axis == axis).Select(p => p.Value).Intersect(paper.Where(p => p.Axis == axis).Select(p => p.Value)).ToList();
            var (mine, theirs) = (Best(ours, axis)!, Best(paper, axis)!);
            var tried = string.Join(", ", paper.Where(p => p.Axis == axis).Select(p => p.Value));
            if (common.Count == 0) { yield return $"{axis}: ours and the paper tried no value in common (the paper: {tried})."; continue; }
            var mineCommon = Best(ours, axis, common)!;
            yield return paper.Any(p => p.Axis == axis && p.Value == mine.Value)
                ? $"{axis}: our best is {mine.Value} (val {F(mine.Top1)} %), the paper's best is {theirs.Value} (mean val {F(theirs.Top1)} % over {theirs.Tasks} tasks) -> " +
                  (mine.Value == theirs.Value ? "the same value." : "a different value.")
                : $"{axis}: our best is {mine.Value} (val {F(mine.Top1)} %), outside the paper's grid ({tried}); of those, ours prefers {mineCommon.Value} and the paper {theirs.Value} -> " +
                  (mineCommon.Value == theirs.Value ? "the same value." : "a different value.");
            if (common.Count < 2) continue;
            var (a, b) = (Range(ours, axis, common), Range(paper, axis, common));
            yield return $"{axis}: over the values both tried ({string.Join(", ", common)}) ours moves {F(a)} points, the paper's {F(b)} -> ours is " +
                (Math.Abs(a - b) < 0.5 ? "about as flat as the paper's." : a < b ? "flatter than the paper's." : "steeper than the paper's.");
        }
    }

    /// <summary>
    /// Per axis both tried at two or more common values: whether our best value among those is the study's best (its mean
    /// val200 over the tasks of the group), as a claim with a verdict. The values are in the note (a claim's numbers are
    /// top-1 points: our val at our best value and the study's mean val at its best). A disagreement on a run the
    /// <paramref name="budget"/> does not vouch for is inconclusive.
    /// </summary>
    public static IReadOnlyList<Findings.Claim> Claims(IReadOnlyList<SensitivityPoint> ours, IReadOnlyList<SensitivityPoint> paper, Findings.BudgetReading budget)
    {
        var claims = new List<Findings.Claim>();
        foreach (var axis in ours.Select(p => p.Axis).Distinct().Where(a => paper.Any(p => p.Axis == a)))
        {
            var common = ours.Where(p => p.Axis == axis).Select(p => p.Value).Intersect(paper.Where(p => p.Axis == axis).Select(p => p.Value)).ToList();
            if (common.Count < 2) continue;
            var (mine, theirs) = (Best(ours, axis, common)!, Best(paper, axis, common)!);
            claims.Add(Findings.Verdicts.Make($"{axis}: the best of {string.Join(", ", common)}", mine.Top1, theirs.Top1, mine.Value == theirs.Value,
                "the same value as the study's (val top-1 at each side's best)", budget, note: $"ours {mine.Value}, the study's {theirs.Value}"));
        }
        return claims;
    }

    /// <summary>A value as the curves compare it: numbers in a short invariant form (1e-3 -> "0.001"), booleans lower case.</summary>
    public static string Normalise(string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) ? x.ToString("G6", CultureInfo.InvariantCulture)
        : bool.TryParse(value, out var b) ? (b ? "true" : "false") : value.Trim();

    static IReadOnlyDictionary<string, string> Axes(TrialConfig c) => c.Hp.ToDictionary(kv => kv.Key, kv => Normalise(kv.Value))
        .Append(new("lr", Normalise(c.Lr.ToString("R", CultureInfo.InvariantCulture))))
        .Append(new("wd", Normalise(c.WeightDecay.ToString("R", CultureInfo.InvariantCulture)))).ToDictionary(kv => kv.Key, kv => kv.Value);

    /// <summary>The tuning grid's Python dict ({'lora_bottleneck': 8, 'lr': 0.001, 'convpass_xavier_init': True}) as normalised strings.</summary>
    static IReadOnlyDictionary<string, string> PaperHp(string python) =>
        Peft.MethodRegistry.ParseJson(python.Replace('\'', '"').Replace("True", "true").Replace("False", "false"))
            .ToDictionary(kv => kv.Key, kv => Normalise(kv.Value));

    /// <summary>Each axis with two or more values: per value, the best top-1 among the trials with it.</summary>
    static IEnumerable<SensitivityPoint> Curves(IEnumerable<(IReadOnlyDictionary<string, string> Axes, double Top1)> trials, int tasks)
    {
        var list = trials.ToList();
        foreach (var axis in list.SelectMany(t => t.Axes.Keys).Distinct())
        {
            var byValue = list.Where(t => t.Axes.ContainsKey(axis)).GroupBy(t => t.Axes[axis]).ToList();
            if (byValue.Count < 2) continue;
            foreach (var g in byValue) yield return new SensitivityPoint(axis, g.Key, g.Max(t => t.Top1), tasks);
        }
    }

    /// <summary>Axes by name ("lr" and "wd" last), values in numeric order where they are numbers.</summary>
    static IReadOnlyList<SensitivityPoint> Ordered(IEnumerable<SensitivityPoint> points) => points
        .OrderBy(p => p.Axis is "lr" or "wd" ? 1 : 0).ThenBy(p => p.Axis, StringComparer.Ordinal)
        .ThenBy(p => double.TryParse(p.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) ? x : double.MaxValue)
        .ThenBy(p => p.Value, StringComparer.Ordinal).ToList();
}
