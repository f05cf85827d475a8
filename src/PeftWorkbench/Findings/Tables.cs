using Microsoft.Data.Analysis;
using PeftWorkbench.Analysis;
using PeftWorkbench.Data;

namespace PeftWorkbench.Findings;

/// <summary>Tables a reader can read whole: pivots with the text column first and numbers to 1 decimal.</summary>
public static class Tables
{
    /// <summary>method, then one column per task (group order, then name), then mean; methods by mean, best first.</summary>
    public static DataFrame MethodsByTasks(IReadOnlyList<Score> scores)
    {
        var tasks = scores.Select(s => (s.Task, s.Group)).Distinct().OrderBy(t => GroupOrder(t.Group)).ThenBy(t => t.Task, StringComparer.Ordinal).Select(t => t.Task).ToList();
        var methods = scores.GroupBy(s => s.Method).OrderByDescending(g => g.Average(s => s.Top1)).Select(g => g.Key).ToList();
        var cols = new List<DataFrameColumn> { new StringDataFrameColumn("method", methods) };
        foreach (var t in tasks)
            cols.Add(new PrimitiveDataFrameColumn<double>(t, methods.Select(m => Verdicts.Round(scores.FirstOrDefault(s => s.Method == m && s.Task == t)?.Top1))));
        cols.Add(new PrimitiveDataFrameColumn<double>("mean", methods.Select(m => Verdicts.Round(scores.Where(s => s.Method == m).Average(s => s.Top1)))));
        return new DataFrame(cols);
    }

    /// <summary>method, then per group (ours) "ours" and "paper" side by side, then "all": our mean over the tasks run beside
    /// the paper's over VTAB-1K's tasks of that group (last epoch), and the paper's best-epoch mean; methods by our mean.</summary>
    public static DataFrame MethodsByGroupsBesidePaper(IReadOnlyList<Score> ours)
    {
        var last = Paper.Vtab1kScores("last");
        var best = Paper.Vtab1kScores("best");
        var methods = ours.GroupBy(s => s.Method).Where(g => last.Any(p => p.Method == g.Key)).OrderByDescending(g => g.Average(s => s.Top1)).Select(g => g.Key).ToList();
        var groups = ours.Select(s => s.Group).Distinct().OrderBy(GroupOrder).ToList();
        double? Mean(IEnumerable<Score> s, string m, string? g) =>
            s.Where(x => x.Method == m && (g is null || x.Group == g)).Select(x => (double?)x.Top1).DefaultIfEmpty(null).Average();
        var cols = new List<DataFrameColumn> { new StringDataFrameColumn("method", methods) };
        foreach (var g in groups)
        {
            cols.Add(new PrimitiveDataFrameColumn<double>($"{g} ours", methods.Select(m => Verdicts.Round(Mean(ours, m, g)))));
            cols.Add(new PrimitiveDataFrameColumn<double>($"{g} paper", methods.Select(m => Verdicts.Round(Mean(last, m, g)))));
        }
        cols.Add(new PrimitiveDataFrameColumn<double>("all ours", methods.Select(m => Verdicts.Round(Mean(ours, m, null)))));
        cols.Add(new PrimitiveDataFrameColumn<double>("all paper", methods.Select(m => Verdicts.Round(Mean(last, m, null)))));
        cols.Add(new PrimitiveDataFrameColumn<double>("all paper (best epoch)", methods.Select(m => Verdicts.Round(Mean(best, m, null)))));
        return new DataFrame(cols);
    }

    static int GroupOrder(string g) => Suite.Groups.ToList().IndexOf(g) is var i && i >= 0 ? i : 99;
}
