using System.Globalization;
using Microsoft.Data.Analysis;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Findings;

/// <summary>One method on one task under two budgets: the configuration each selected and each final's test top-1, and
/// where both finals saved their test predictions, how many test images only one of the two got right. <see cref="SameSchedule"/>:
/// both finals trained the same number of epochs (default gives its longer methods the reference's), so the pair agrees by
/// construction, not by measurement.</summary>
public sealed record PairAgreement(string Task, string Method, string Selected, string ReferenceSelected, double? Test, double? ReferenceTest,
    (int OnlyOurs, int OnlyReference)? Discordant = null, bool SameSchedule = false)
{
    public bool SameSelection => Selected.Length > 0 && Selected == ReferenceSelected;
    public double? TestGap => Test - ReferenceTest;
    public bool TestWithin(double points) => TestGap is double g && Math.Abs(g) <= points;
    /// <summary>McNemar's exact two-sided p on the same test images: whether the two finals differ by more than their
    /// disagreements explain by chance (null without both predictions).</summary>
    public double? PairedP => Discordant is var (a, b) ? BudgetAgreement.McNemarP(a, b) : null;
}

/// <summary>
/// Does a short budget select, and reach, what a long one does (issue 27)? For every task x method run under both
/// (matched by task and method; VTAB-1K on the whole train800 only): the same selected configuration (lr, wd, drop
/// path and method options), and final test top-1 within <see cref="Tolerance"/> points. `peft results DIR --reference
/// REFDIR` prints it for two stores (e.g. runs/default against runs/reference).
/// </summary>
public sealed class BudgetAgreement
{
    /// <summary>Test top-1 within this many points counts as reaching the reference.</summary>
    public const double Tolerance = 1.0;
    /// <summary>A paired p below this calls a test gap more than chance: the two finals differ, not just the test images they
    /// were scored on. Why they differ (budget, seed) it does not say: a reseed of default moved 1 of 48 pairs that far, the
    /// 3x reference budget 14 (2026-12-07).</summary>
    public const double Significance = 0.05;

    public IReadOnlyList<PairAgreement> Pairs { get; }
    /// <summary>Runs present under one budget only (task/method).</summary>
    public IReadOnlyList<string> Unmatched { get; }
    public int SameSelections => Pairs.Count(p => p.SameSelection);
    public int TestsWithin => Pairs.Count(p => p.TestWithin(Tolerance));

    /// <summary>Why there is nothing to compare (no reference store, or this store is the reference); "" otherwise.</summary>
    public string Absent { get; private init; } = "";

    BudgetAgreement(IReadOnlyList<PairAgreement> pairs, IReadOnlyList<string> unmatched) { Pairs = pairs; Unmatched = unmatched; }

    /// <summary>A notebook's comparison with the reference store, which may not exist yet: then an empty agreement whose
    /// sentence says how to fill it.</summary>
    public static BudgetAgreement AgainstReference(string store, string referenceStore)
    {
        if (Path.GetFullPath(store).TrimEnd('/') == Path.GetFullPath(referenceStore).TrimEnd('/'))
            return new BudgetAgreement(Array.Empty<PairAgreement>(), Array.Empty<string>()) { Absent = "These runs are the reference budget itself: nothing to compare." };
        if (!Directory.Exists(referenceStore))
            return new BudgetAgreement(Array.Empty<PairAgreement>(), Array.Empty<string>())
            {
                Absent = $"No reference store at {referenceStore}: run this notebook with Profile = \"reference\" (3x the epochs, 60 on a structured task) to fill it, then again here.",
            };
        return OfStores(store, referenceStore);
    }

    public static BudgetAgreement Of(IEnumerable<RunTrials> runs, IEnumerable<RunTrials> reference) => Of(runs, reference, null);

    /// <param name="discordant">The paired comparison of two finals (null: none).</param>
    static BudgetAgreement Of(IEnumerable<RunTrials> runs, IEnumerable<RunTrials> reference, Func<TrialRecord, TrialRecord, (int, int)?>? discordant)
    {
        static Dictionary<(string, string), RunTrials> ByPair(IEnumerable<RunTrials> rs) =>
            rs.Where(r => r.Final?.Config is { Protocol: "vtab1k", TrainImages: null })
              .GroupBy(r => (r.Task, r.Method)).ToDictionary(g => g.Key, g => g.First());
        var a = ByPair(runs); var b = ByPair(reference);
        var pairs = a.Keys.Where(b.ContainsKey).OrderBy(k => k.Item1, StringComparer.Ordinal).ThenBy(k => k.Item2, StringComparer.Ordinal)
            .Select(k => new PairAgreement(k.Item1, k.Item2, Describe(a[k].Selected), Describe(b[k].Selected), Test(a[k]), Test(b[k]),
                discordant is not null && a[k].Final is { Ok: true } fa && b[k].Final is { Ok: true } fb ? discordant(fa, fb) : null,
                a[k].Final is { Ok: true } x && b[k].Final is { Ok: true } y && x.Epochs == y.Epochs)).ToList();
        var unmatched = a.Keys.Except(b.Keys).Select(k => $"{k.Item1}/{k.Item2} (no reference)")
            .Concat(b.Keys.Except(a.Keys).Select(k => $"{k.Item1}/{k.Item2} (reference only)")).ToList();
        return new BudgetAgreement(pairs, unmatched);
    }

    /// <summary>The runs of two results stores, with the paired comparison of each pair's test predictions where both
    /// finals saved them (a missing or unreadable file leaves that pair without one, never fails the comparison).</summary>
    public static BudgetAgreement OfStores(string store, string referenceStore) =>
        Of(RunTrials.FromRecords(new ResultsStore(Existing(store)).Records()), RunTrials.FromRecords(new ResultsStore(Existing(referenceStore)).Records()),
            (ours, reference) => Discordant(ours, store, reference, referenceStore));

    static (int, int)? Discordant(TrialRecord ours, string store, TrialRecord reference, string referenceStore)
    {
        try
        {
            var (a, b) = (Analysis.Predictions.ReadFile(store, ours, "test"), Analysis.Predictions.ReadFile(referenceStore, reference, "test"));
            if (a.Count != b.Count || !a.Labels.SequenceEqual(b.Labels)) return null; // not the same test images
            int onlyA = 0, onlyB = 0;
            for (int i = 0; i < a.Count; i++)
                if (a.Correct[i] != b.Correct[i]) { if (a.Correct[i]) onlyA++; else onlyB++; }
            return (onlyA, onlyB);
        }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException) { return null; }
    }

    /// <summary>McNemar's exact test, two-sided: the chance that a fair coin over the <paramref name="onlyA"/> +
    /// <paramref name="onlyB"/> discordant images splits at least as unevenly.</summary>
    public static double McNemarP(int onlyA, int onlyB)
    {
        if (onlyA < 0 || onlyB < 0) throw new ArgumentOutOfRangeException(nameof(onlyA), "discordant counts are never negative");
        int n = onlyA + onlyB, k = Math.Min(onlyA, onlyB);
        if (n == 0) return 1;
        double logTerm = -n * Math.Log(2), tail = 0; // log of C(n, i) / 2^n, from i = 0
        for (int i = 0; i <= k; i++)
        {
            if (i > 0) logTerm += Math.Log((double)(n - i + 1) / i);
            tail += Math.Exp(logTerm);
        }
        return Math.Min(1, 2 * tail);
    }

    static string Existing(string dir) =>
        Directory.Exists(dir) ? dir : throw new DirectoryNotFoundException($"No results store at {Path.GetFullPath(dir)}.");

    static double? Test(RunTrials r) => r.Final is { Ok: true } f ? f.Top1Last : null;

    /// <summary>The selected configuration without its budget: lr, wd, drop path and the method's options ("" when none was selected).</summary>
    public static string Describe(TrialRecord? selected)
    {
        if (selected is null) return "";
        var c = selected.Config;
        static string F(double v) => v.ToString("G3", CultureInfo.InvariantCulture);
        return string.Join(", ", new[] { $"lr {F(c.Lr)}", $"wd {F(c.WeightDecay)}", $"dp {F(c.DropPath)}" }.Concat(c.Hp.Select(kv => $"{kv.Key} {kv.Value}")));
    }

    public string Sentence()
    {
        int n = Pairs.Count;
        if (Absent.Length > 0) return Absent;
        if (n == 0) return "No task x method ran under both budgets.";
        var gaps = Pairs.Where(p => p.TestGap is not null).Select(p => p.TestGap!.Value).ToList();
        var mean = gaps.Count > 0 ? $"; test top-1 is {Math.Abs(gaps.Average()):F1} points {(gaps.Average() >= 0 ? "above" : "below")} the reference's on average (worst {gaps.Min():F1})" : "";
        var outside = Pairs.Where(p => p.TestGap is not null && !p.TestWithin(Tolerance)).ToList();
        var paired = outside.Where(p => p.PairedP is not null).ToList();
        var beyond = paired.Count(p => p.PairedP < Significance);
        var noise = paired.Count == 0 ? "" : $" Of the {outside.Count} gaps over {Tolerance:F0} point, {beyond} of {paired.Count} are more than chance on the same " +
            $"test images (McNemar, p < {Significance:G2}): the two finals differ, not just the test sample" +
            (paired.Count - beyond > 0 ? $"; {paired.Count - beyond} could be chance." : ".");
        var same = Pairs.Where(p => p.SameSchedule).ToList();
        var measured = Pairs.Where(p => !p.SameSchedule).ToList();
        var construction = same.Count == 0 ? "" : $" {same.Count} of the {n} trained the same schedule under both budgets (default gives those methods " +
            $"the reference's epochs), so they agree by construction; on the other {measured.Count} the selection agrees on " +
            $"{measured.Count(p => p.SameSelection)} and the test is within {Tolerance:F0} point on {measured.Count(p => p.TestWithin(Tolerance))}.";
        return $"Against the reference budget, the selection agrees on {SameSelections} of {n} pairs and the final test top-1 is within " +
            $"{Tolerance:F0} point on {TestsWithin} of {n}{mean}.{construction}{noise}";
    }

    /// <summary>task, method, selected, reference selected, same, test, reference test, gap, paired p (McNemar; NaN without predictions),
    /// same schedule (both finals trained the same epochs).</summary>
    public DataFrame Table() => new(
        new StringDataFrameColumn("task", Pairs.Select(p => p.Task)), new StringDataFrameColumn("method", Pairs.Select(p => p.Method)),
        new StringDataFrameColumn("selected", Pairs.Select(p => p.Selected)), new StringDataFrameColumn("reference selected", Pairs.Select(p => p.ReferenceSelected)),
        new BooleanDataFrameColumn("same", Pairs.Select(p => p.SameSelection)),
        new PrimitiveDataFrameColumn<double>("test", Pairs.Select(p => Verdicts.Round(p.Test))),
        new PrimitiveDataFrameColumn<double>("reference test", Pairs.Select(p => Verdicts.Round(p.ReferenceTest))),
        new PrimitiveDataFrameColumn<double>("gap", Pairs.Select(p => Verdicts.Round(p.TestGap))),
        new PrimitiveDataFrameColumn<double>("paired p", Pairs.Select(p => p.PairedP is double x ? Math.Round(x, 3) : (double?)null)),
        new BooleanDataFrameColumn("same schedule", Pairs.Select(p => p.SameSchedule)));
}
