using Microsoft.Data.Analysis;
using PeftWorkbench.Data;

namespace PeftWorkbench.Analysis;

/// <summary>One method's test top-1 (percent) on one task.</summary>
public sealed record Score(string Task, string Group, string Method, double Top1);

/// <summary>
/// Test top-1 per method and task, from a results store (finals' last-epoch top-1) or the paper's table, and
/// what the study draws from it: ranks per task (Figure 2's idea), rank frequencies per group, mean ranks, and
/// Figure 1a's gain over the linear probe.
/// Ranks are competition ranks: 1 = best; tied methods share the best rank of their block (90, 90, 80 -> 1, 1, 3).
/// </summary>
public static class Ranks
{
    /// <summary>Finals of a store. Groups come from the mini suite's task table (else "other").</summary>
    public static IReadOnlyList<Score> FromStore(string storeDir, string? profile = null, string metric = "last", long? seed = null) =>
        Predictions.StoreFinals(storeDir, profile, seed).Select(r => new Score(r.Config.Task, GroupOf(r.Config.Task), r.Config.Method,
            (metric == "best" ? r.Top1Best : r.Top1Last) ?? double.NaN)).ToList();

    /// <summary>The paper's VTAB-1K table (last-epoch top-1, or "best").</summary>
    public static IReadOnlyList<Score> FromPaper(string metric = "last") => Paper.Vtab1kScores(metric);

    public static string GroupOf(string task) => Suite.Mini.Tasks.FirstOrDefault(t => t.Name == task)?.Group ?? "other";

    static void CheckUnique(IReadOnlyList<Score> scores)
    {
        var dup = scores.GroupBy(s => (s.Task, s.Method)).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ArgumentException($"Method '{dup.Key.Method}' is named twice on task '{dup.Key.Task}'.");
    }

    /// <summary>task, group, method, top1, rank (per task; higher top-1 = better rank).</summary>
    public static DataFrame PerTask(IReadOnlyList<Score> scores)
    {
        CheckUnique(scores);
        var ranked = RankAll(scores);
        return new DataFrame(
            new StringDataFrameColumn("task", ranked.Select(r => r.S.Task)), new StringDataFrameColumn("group", ranked.Select(r => r.S.Group)),
            new StringDataFrameColumn("method", ranked.Select(r => r.S.Method)), new PrimitiveDataFrameColumn<double>("top1", ranked.Select(r => r.S.Top1)),
            new PrimitiveDataFrameColumn<int>("rank", ranked.Select(r => r.Rank)));
    }

    public static IReadOnlyList<(Score S, int Rank)> RankAll(IReadOnlyList<Score> scores) =>
        scores.GroupBy(s => s.Task).SelectMany(g =>
        {
            var list = g.ToList();
            return list.Select(s => (s, 1 + list.Count(o => o.Top1 > s.Top1)));
        }).ToList();

    /// <summary>group, method, then rank_1 .. rank_M: on how many tasks of the group the method had each rank.</summary>
    public static DataFrame RankFrequency(IReadOnlyList<Score> scores)
    {
        CheckUnique(scores);
        var ranked = RankAll(scores);
        int maxRank = ranked.Count == 0 ? 0 : ranked.Max(r => r.Rank);
        var rows = ranked.GroupBy(r => (r.S.Group, r.S.Method)).OrderBy(g => g.Key.Group).ThenBy(g => g.Key.Method).ToList();
        var cols = new List<DataFrameColumn>
        {
            new StringDataFrameColumn("group", rows.Select(g => g.Key.Group)), new StringDataFrameColumn("method", rows.Select(g => g.Key.Method)),
        };
        for (int r = 1; r <= maxRank; r++)
        {
            int rank = r;
            cols.Add(new PrimitiveDataFrameColumn<int>($"rank_{r}", rows.Select(g => g.Count(x => x.Rank == rank))));
        }
        return new DataFrame(cols);
    }

    /// <summary>method, mean rank over all tasks and per group, mean top-1; sorted by mean rank.</summary>
    public static DataFrame MeanRank(IReadOnlyList<Score> scores)
    {
        CheckUnique(scores);
        var ranked = RankAll(scores);
        var groups = ranked.Select(r => r.S.Group).Distinct().OrderBy(g => Array.IndexOf(Suite.Groups.ToArray(), g) is var i && i < 0 ? 99 : i).ToList();
        var rows = ranked.GroupBy(r => r.S.Method).OrderBy(g => g.Average(x => x.Rank)).ToList();
        var cols = new List<DataFrameColumn>
        {
            new StringDataFrameColumn("method", rows.Select(g => g.Key)),
            new PrimitiveDataFrameColumn<double>("mean_rank", rows.Select(g => g.Average(x => (double)x.Rank))),
        };
        foreach (var group in groups)
            cols.Add(new PrimitiveDataFrameColumn<double>($"mean_rank_{group}", rows.Select(g =>
                g.Where(x => x.S.Group == group).Select(x => (double?)x.Rank).DefaultIfEmpty(null).Average())));
        cols.Add(new PrimitiveDataFrameColumn<double>("mean_top1", rows.Select(g => g.Average(x => x.S.Top1))));
        cols.Add(new PrimitiveDataFrameColumn<int>("tasks", rows.Select(g => g.Count())));
        return new DataFrame(cols);
    }
}

/// <summary>One task of Figure 1a: top-1 gains over the linear probe of full FT and of the worst and best PEFT method.</summary>
public sealed record GainRow(string Task, string Group, double Linear, double FullGain, double PeftMinGain, double PeftMaxGain, string PeftMin, string PeftMax);

/// <summary>The study's Figure 1a: per task, gain over linear probing (linear at 0, full FT, the range of PEFT methods).</summary>
public static class GainOverLinear
{
    public const string Linear = "linear", Full = "full";

    /// <summary>Tasks that have a linear probe, full FT and at least one other method; ordered by group, then task.</summary>
    public static IReadOnlyList<GainRow> Rows(IReadOnlyList<Score> scores)
    {
        var rows = new List<GainRow>();
        foreach (var g in scores.GroupBy(s => s.Task))
        {
            var lin = g.FirstOrDefault(s => s.Method == Linear);
            var full = g.FirstOrDefault(s => s.Method == Full);
            var peft = g.Where(s => s.Method is not Linear and not Full).OrderBy(s => s.Top1).ToList();
            if (lin is null || full is null || peft.Count == 0) continue;
            rows.Add(new GainRow(g.Key, lin.Group, lin.Top1, full.Top1 - lin.Top1, peft[0].Top1 - lin.Top1, peft[^1].Top1 - lin.Top1, peft[0].Method, peft[^1].Method));
        }
        if (rows.Count == 0)
            throw new ArgumentException($"Figure 1a needs tasks with '{Linear}', '{Full}' and a PEFT method; tasks given: {string.Join(", ", scores.Select(s => s.Task).Distinct())}.");
        var order = Suite.Groups.ToList();
        return rows.OrderBy(r => order.IndexOf(r.Group) is var i && i < 0 ? 99 : i).ThenBy(r => r.Task, StringComparer.Ordinal).ToList();
    }

    public static DataFrame Table(IReadOnlyList<Score> scores)
    {
        var rows = Rows(scores);
        return new DataFrame(
            new StringDataFrameColumn("task", rows.Select(r => r.Task)), new StringDataFrameColumn("group", rows.Select(r => r.Group)),
            new PrimitiveDataFrameColumn<double>("linear_top1", rows.Select(r => r.Linear)),
            new PrimitiveDataFrameColumn<double>("full_gain", rows.Select(r => r.FullGain)),
            new PrimitiveDataFrameColumn<double>("peft_min_gain", rows.Select(r => r.PeftMinGain)),
            new PrimitiveDataFrameColumn<double>("peft_max_gain", rows.Select(r => r.PeftMaxGain)),
            new StringDataFrameColumn("peft_min", rows.Select(r => r.PeftMin)), new StringDataFrameColumn("peft_max", rows.Select(r => r.PeftMax)));
    }
}
