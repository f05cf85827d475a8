using Microsoft.Data.Analysis;

namespace PeftWorkbench.Analysis;

/// <summary>
/// Counts of every region of a Venn diagram of 2-4 sets: Regions[mask] = samples in exactly the sets whose bits
/// are in mask (bit i = Methods[i]); mask 0 (in none) is not a region. K is the per-method set size it came from.
/// </summary>
public sealed record VennCounts(string What, IReadOnlyList<string> Methods, IReadOnlyDictionary<int, int> Regions, int K)
{
    public int this[int mask] => Regions.TryGetValue(mask, out var c) ? c : 0;

    /// <summary>Count in the region named by its methods, e.g. ("lora", "ssf") = lora and ssf, not the others.</summary>
    public int Of(params string[] methods) => this[MaskOf(methods)];

    public int MaskOf(IEnumerable<string> methods)
    {
        int mask = 0;
        foreach (var m in methods)
        {
            int i = Methods.ToList().IndexOf(m);
            if (i < 0) throw new ArgumentException($"'{m}' is not among the Venn's methods ({string.Join(", ", Methods)}).");
            mask |= 1 << i;
        }
        return mask;
    }

    /// <summary>Samples in at least one set (the union).</summary>
    public int Total => Regions.Values.Sum();

    /// <summary>Share of the union that every set holds (the study's CIFAR-100: 1,425 of 9,115, 15.6 %); NaN for an empty union.</summary>
    public double SharedByAll => Total == 0 ? double.NaN : (double)this[(1 << Methods.Count) - 1] / Total;

    /// <summary>Share of the union that exactly one set holds (the study's: 4,894 of 9,115, 53.7 %); NaN for an empty union.</summary>
    public double InOnlyOne => Total == 0 ? double.NaN
        : (double)Regions.Where(kv => System.Numerics.BitOperations.PopCount((uint)kv.Key) == 1).Sum(kv => kv.Value) / Total;

    /// <summary>Each set's size: the samples of every region that holds it.</summary>
    public IReadOnlyList<int> SetSizes => Enumerable.Range(0, Methods.Count).Select(i => Regions.Where(kv => (kv.Key >> i & 1) == 1).Sum(kv => kv.Value)).ToList();

    /// <summary>The chance baseline of <see cref="SharedByAll"/>: the share of the union that all sets would hold if sets of
    /// these sizes were drawn independently from <paramref name="population"/> samples (expected intersection over expected
    /// union). The study's CIFAR-100 sets (4,925, 4,902 and 4,934 of 10,000) give 13.7 %, against its 15.6 %.</summary>
    public double ChanceSharedByAll(int population)
    {
        if (population <= 0) throw new ArgumentException($"population must be positive, got {population}.");
        var p = SetSizes.Select(s => (double)s / population).ToList();
        double all = p.Aggregate(1.0, (a, x) => a * x), none = p.Aggregate(1.0, (a, x) => a * (1 - x));
        return none >= 1 ? double.NaN : all / (1 - none);
    }

    public string RegionName(int mask)
    {
        var names = Enumerable.Range(0, Methods.Count).Where(i => (mask >> i & 1) == 1).Select(i => Methods[i]).ToList();
        return names.Count == 1 ? names[0] + " only" : string.Join(" & ", names);
    }

    /// <summary>Regions in a fixed order: by number of sets, then by mask.</summary>
    public IReadOnlyList<int> Masks => Enumerable.Range(1, (1 << Methods.Count) - 1)
        .OrderBy(m => System.Numerics.BitOperations.PopCount((uint)m)).ThenBy(m => m).ToList();

    public DataFrame ToDataFrame() => new(
        new StringDataFrameColumn("region", Masks.Select(RegionName)),
        new PrimitiveDataFrameColumn<int>("sets", Masks.Select(m => System.Numerics.BitOperations.PopCount((uint)m))),
        new PrimitiveDataFrameColumn<int>("count", Masks.Select(m => this[m])));

    /// <summary>Ours beside the study's, region by region (methods matched by position): region, ours, study.</summary>
    public DataFrame Beside(VennCounts study)
    {
        if (study.Methods.Count != Methods.Count)
            throw new ArgumentException($"The study's Venn has {study.Methods.Count} sets, ours {Methods.Count}.");
        return new DataFrame(
            new StringDataFrameColumn("region", Masks.Select(RegionName)),
            new StringDataFrameColumn("study_region", Masks.Select(study.RegionName)),
            new PrimitiveDataFrameColumn<int>("ours", Masks.Select(m => this[m])),
            new PrimitiveDataFrameColumn<double>("ours_share", Masks.Select(m => (double)this[m] / Math.Max(1, K))),
            new PrimitiveDataFrameColumn<int>("study", Masks.Select(m => study[m])),
            new PrimitiveDataFrameColumn<double>("study_share", Masks.Select(m => (double)study[m] / Math.Max(1, study.K))));
    }
}

/// <summary>
/// The study's Figure 1b: each method's K most confident test samples (K = 5,000 of CIFAR-100's 10,000 there,
/// scaled to the test-set size here unless given), and the Venn regions of the correct ones among them; the same
/// for the K least confident samples and the wrong ones among them.
/// </summary>
public static class ConfidentSets
{
    public const int StudyK = 5000, StudyTestSize = 10000;

    /// <summary>The study's counts (CIFAR-100, VTAB-1K; README of shared/paper): LoRA, Adapter, SSF.</summary>
    public static VennCounts StudyCifar100 { get; } = new("correct among the 5,000 most confident (study, CIFAR-100)",
        new[] { "LoRA", "Adapter", "SSF" },
        new Dictionary<int, int> { [1] = 1634, [2] = 1559, [4] = 1701, [3] = 988, [5] = 878, [6] = 930, [7] = 1425 }, StudyK);

    /// <summary>K scaled from the study's 5,000 of 10,000 to <paramref name="testSize"/> (at least 1).</summary>
    public static int ScaledK(int testSize) => Math.Max(1, (int)Math.Round((double)testSize * StudyK / StudyTestSize));

    /// <summary>Indices of the K most (or least) confident samples; ties go to the lower index.</summary>
    public static int[] Ranked(MethodPredictions m, int k, bool most = true)
    {
        CheckK(m, k);
        var order = Enumerable.Range(0, m.Count).ToArray();
        Array.Sort(order, (a, b) =>
        {
            int c = most ? m.Confidence[b].CompareTo(m.Confidence[a]) : m.Confidence[a].CompareTo(m.Confidence[b]);
            return c != 0 ? c : a.CompareTo(b);
        });
        return order[..k];
    }

    /// <summary>Venn of the correct predictions among each method's K most confident samples.</summary>
    public static VennCounts CorrectAmongMostConfident(Predictions p, IReadOnlyList<string>? methods = null, int? k = null) =>
        Venn(p, methods, k, most: true, keepCorrect: true, "correct among the most confident");

    /// <summary>Venn of the wrong predictions among each method's K least confident samples.</summary>
    public static VennCounts WrongAmongLeastConfident(Predictions p, IReadOnlyList<string>? methods = null, int? k = null) =>
        Venn(p, methods, k, most: false, keepCorrect: false, "wrong among the least confident");

    static VennCounts Venn(Predictions p, IReadOnlyList<string>? methods, int? k, bool most, bool keepCorrect, string what)
    {
        var chosen = p.Select(methods ?? p.Names);
        if (chosen.Methods.Count is < 2 or > 4)
            throw new ArgumentException($"A Venn diagram takes 2-4 methods; got {chosen.Methods.Count} ({string.Join(", ", chosen.Names)}) on task '{p.Task}'.");
        int kk = k ?? ScaledK(p.Count);
        var membership = new int[p.Count];
        for (int s = 0; s < chosen.Methods.Count; s++)
        {
            var m = chosen.Methods[s];
            foreach (var i in Ranked(m, kk, most))
                if (m.Correct[i] == keepCorrect) membership[i] |= 1 << s;
        }
        var regions = membership.Where(x => x != 0).GroupBy(x => x).ToDictionary(g => g.Key, g => g.Count());
        return new VennCounts($"{what} (K = {kk} of {p.Count}, {p.Task})", chosen.Names, regions, kk);
    }

    static void CheckK(MethodPredictions m, int k)
    {
        if (k <= 0 || k > m.Count)
            throw new ArgumentException($"K = {k} for {m.Method} on {m.Task} ({m.Source}): must be in 1..{m.Count}, the number of {m.Split} samples.");
    }
}
