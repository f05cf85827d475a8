using Microsoft.Data.Analysis;

namespace PeftWorkbench.Analysis;

/// <summary>How members' outputs combine: mean of logits, mean of softmax probabilities, or majority vote of
/// predicted labels (ties broken by the summed probability of the tied classes, then the lower class).</summary>
public enum EnsembleRule { LogitMean, ProbabilityMean, MajorityVote }

/// <summary>An ensemble for one task: its members, its val and test top-1, the best single member's test top-1, and how
/// the members were picked (<see cref="Ensembles.Greedy"/>: "greedy on val"; <see cref="Ensembles.Fixed"/>: named by the caller).</summary>
public sealed record EnsembleResult(string Task, string Group, EnsembleRule Rule, IReadOnlyList<string> Members, double ValTop1, double TestTop1,
    string BestMember, double BestMemberTest, string Selection = Ensembles.GreedyOnVal);

/// <summary>
/// Output ensembles of fine-tuned methods (the study's closing suggestion: different methods err differently).
/// <see cref="GreedySelect"/> chooses members on validation predictions only; test predictions are only scored.
/// </summary>
public static class Ensembles
{
    public const string GreedyOnVal = "greedy on val";

    /// <summary>Predicted labels of the ensemble of <paramref name="members"/> (at least two, each once).</summary>
    public static int[] Predict(Predictions p, IReadOnlyList<string> members, EnsembleRule rule)
    {
        if (members.Count < 2)
            throw new ArgumentException($"An ensemble needs at least two methods; got {members.Count} ({string.Join(", ", members)}) on task '{p.Task}'.");
        return Combine(p.Select(members).Methods, rule);
    }

    /// <summary>Top-1 (percent) of the ensemble of <paramref name="members"/>.</summary>
    public static double Top1(Predictions p, IReadOnlyList<string> members, EnsembleRule rule) => Accuracy(Predict(p, members, rule), p.Labels);

    static double Accuracy(int[] predicted, long[] labels)
    {
        int c = 0;
        for (int i = 0; i < labels.Length; i++) if (predicted[i] == labels[i]) c++;
        return labels.Length == 0 ? 0 : 100.0 * c / labels.Length;
    }

    /// <summary>The combination itself (one member gives its own predictions).</summary>
    internal static int[] Combine(IReadOnlyList<MethodPredictions> ms, EnsembleRule rule)
    {
        int n = ms[0].Count, k = ms[0].NumClasses;
        var result = new int[n];
        var score = new double[k];
        var votes = new int[k];
        for (int i = 0; i < n; i++)
        {
            Array.Clear(score); Array.Clear(votes);
            foreach (var m in ms)
            {
                for (int c = 0; c < k; c++) score[c] += rule == EnsembleRule.LogitMean ? m.Logits[i * k + c] : m.Probabilities[i * k + c];
                votes[m.Predicted[i]]++;
            }
            int best = 0;
            for (int c = 1; c < k; c++)
            {
                bool better = rule == EnsembleRule.MajorityVote
                    ? votes[c] > votes[best] || votes[c] == votes[best] && score[c] > score[best]
                    : score[c] > score[best];
                if (better) best = c;
            }
            result[i] = best;
        }
        return result;
    }

    /// <summary>
    /// Forward selection on <paramref name="val"/> (validation predictions only): start from the best single method,
    /// then add, one at a time, the method that raises val top-1 the most (ties: earlier in <paramref name="val"/>'s
    /// order), while it strictly rises and the ensemble has fewer than <paramref name="maxMembers"/> members.
    /// Returns the members in the order they were added (one member when no addition helps).
    /// </summary>
    public static IReadOnlyList<string> GreedySelect(Predictions val, EnsembleRule rule, int maxMembers = int.MaxValue)
    {
        if (val.Methods.Count < 2) throw new ArgumentException($"Greedy selection needs at least two methods on task '{val.Task}'; got {val.Methods.Count}.");
        var chosen = new List<MethodPredictions>();
        double current = double.NegativeInfinity;
        while (chosen.Count < Math.Min(maxMembers, val.Methods.Count))
        {
            MethodPredictions? pick = null;
            double pickScore = current;
            foreach (var m in val.Methods)
            {
                if (chosen.Contains(m)) continue;
                double s = Accuracy(Combine(chosen.Append(m).ToList(), rule), val.Labels);
                if (s > pickScore) (pick, pickScore) = (m, s);
            }
            if (pick is null) break;
            chosen.Add(pick);
            current = pickScore;
        }
        return chosen.Select(m => m.Method).ToList();
    }

    /// <summary>
    /// For one task: greedy members chosen on <paramref name="val"/>, scored on <paramref name="test"/>, beside the
    /// best single member on test (the members' best, so the gain is what combining adds).
    /// </summary>
    public static EnsembleResult Greedy(Predictions val, Predictions test, EnsembleRule rule, string? group = null, int maxMembers = int.MaxValue)
    {
        if (val.Task != test.Task) throw new ArgumentException($"val predictions are for '{val.Task}', test for '{test.Task}'.");
        var members = GreedySelect(val, rule, maxMembers);
        var testMembers = test.Select(members).Methods;
        var best = testMembers.OrderByDescending(m => m.Top1).First();
        return new EnsembleResult(test.Task, group ?? Ranks.GroupOf(test.Task), rule, members,
            Accuracy(Combine(val.Select(members).Methods, rule), val.Labels), Accuracy(Combine(testMembers, rule), test.Labels), best.Method, best.Top1);
    }

    /// <summary>
    /// For one task: the ensemble of the given <paramref name="members"/> (no selection; e.g. every PEFT method),
    /// scored on val and test, beside its best single member on test. <paramref name="selection"/> names the set in tables and charts.
    /// </summary>
    public static EnsembleResult Fixed(Predictions val, Predictions test, IReadOnlyList<string> members, EnsembleRule rule, string selection, string? group = null)
    {
        if (val.Task != test.Task) throw new ArgumentException($"val predictions are for '{val.Task}', test for '{test.Task}'.");
        var testTop1 = Top1(test, members, rule); // checks: at least two members, each once, all present
        var best = test.Select(members).Methods.OrderByDescending(m => m.Top1).First();
        return new EnsembleResult(test.Task, group ?? Ranks.GroupOf(test.Task), rule, members.ToList(), Top1(val, members, rule), testTop1,
            best.Method, best.Top1, selection);
    }

    /// <summary>Every task of a store: greedy ensembles per rule (tabulate with <see cref="Table"/> and <see cref="GroupGains"/>).</summary>
    public static IReadOnlyList<EnsembleResult> FromStore(string storeDir, IEnumerable<EnsembleRule>? rules = null, string? profile = null, IEnumerable<string>? methods = null)
    {
        var results = new List<EnsembleResult>();
        var tasks = Predictions.StoreFinals(storeDir, profile).Select(r => r.Config.Task).Distinct().ToList();
        foreach (var task in tasks)
        {
            var m = methods?.ToList();
            var val = Predictions.Load(storeDir, task, "val", m, profile);
            var test = Predictions.Load(storeDir, task, "test", m, profile);
            foreach (var rule in rules ?? Enum.GetValues<EnsembleRule>()) results.Add(Greedy(val, test, rule));
        }
        return results;
    }

    /// <summary>Columns: task, group, rule, members, val/test top-1, best member and its top-1, gain.</summary>
    public static DataFrame Table(IReadOnlyList<EnsembleResult> rs) => new(
        new StringDataFrameColumn("task", rs.Select(r => r.Task)), new StringDataFrameColumn("group", rs.Select(r => r.Group)),
        new StringDataFrameColumn("selection", rs.Select(r => r.Selection)), new StringDataFrameColumn("rule", rs.Select(r => r.Rule.ToString())),
        new StringDataFrameColumn("members", rs.Select(r => string.Join("+", r.Members))),
        new PrimitiveDataFrameColumn<double>("val_top1", rs.Select(r => r.ValTop1)), new PrimitiveDataFrameColumn<double>("test_top1", rs.Select(r => r.TestTop1)),
        new StringDataFrameColumn("best_member", rs.Select(r => r.BestMember)), new PrimitiveDataFrameColumn<double>("best_member_top1", rs.Select(r => r.BestMemberTest)),
        new PrimitiveDataFrameColumn<double>("gain", rs.Select(r => r.TestTop1 - r.BestMemberTest)));

    /// <summary>Mean gain over the best member per group, selection and rule (from <see cref="Table"/>'s rows).</summary>
    public static DataFrame GroupGains(IReadOnlyList<EnsembleResult> rs)
    {
        var g = rs.GroupBy(r => (r.Group, r.Selection, r.Rule)).OrderBy(x => x.Key.Group).ThenBy(x => x.Key.Selection, StringComparer.Ordinal).ThenBy(x => x.Key.Rule).ToList();
        return new DataFrame(
            new StringDataFrameColumn("group", g.Select(x => x.Key.Group)), new StringDataFrameColumn("selection", g.Select(x => x.Key.Selection)),
            new StringDataFrameColumn("rule", g.Select(x => x.Key.Rule.ToString())),
            new PrimitiveDataFrameColumn<double>("mean_gain", g.Select(x => x.Average(r => r.TestTop1 - r.BestMemberTest))),
            new PrimitiveDataFrameColumn<double>("mean_test_top1", g.Select(x => x.Average(r => r.TestTop1))),
            new PrimitiveDataFrameColumn<int>("tasks", g.Select(x => x.Count())));
    }
}
