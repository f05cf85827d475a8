using System.Globalization;
using Microsoft.Data.Analysis;

namespace PeftWorkbench.Analysis;

/// <summary>
/// Finding 4 in numbers, ours beside the paper's (its CLIP WiSE curves): each method's fine-tuned point and its best
/// WiSE point, and the claims the study makes about them, computed from whatever curves a run produced.
/// The best WiSE point is the alpha with the highest average of target and mean shift top-1 (the trade-off Figure 1c shows).
/// </summary>
public static class RobustnessClaims
{
    /// <summary>The paper's curve for one of our methods: the same id, or the id with the study's capacity suffix (lora -> lora_32).</summary>
    public static WiseCurve? PaperCurve(string method) =>
        Wise.PaperCurves().Where(c => c.Method == method || c.Method.StartsWith(method + "_", StringComparison.Ordinal)).OrderBy(c => c.Method.Length).FirstOrDefault();

    /// <summary>The alpha with the best average of target and mean shift top-1.</summary>
    public static WisePoint Best(WiseCurve c) => c.Points.OrderByDescending(p => (p.Target + p.MeanShift) / 2).ThenBy(p => p.Alpha).First();

    static WisePoint End(WiseCurve c) => c.Points.First(p => p.Alpha == 1);

    /// <summary>Per method: zero-shot, fine-tuned and best-WiSE points (target / mean shift), ours then the paper's.</summary>
    public static DataFrame Table(IReadOnlyList<WiseCurve> ours)
    {
        var rows = ours.Select(c => (Ours: c, Paper: PaperCurve(c.Method))).ToList();
        DataFrameColumn D(string name, Func<(WiseCurve Ours, WiseCurve? Paper), double?> f) =>
            new PrimitiveDataFrameColumn<double>(name, rows.Select(r => f(r) is double v ? Math.Round(v, 2) : (double?)null));
        return new DataFrame(new StringDataFrameColumn("method", rows.Select(r => r.Ours.Method)),
            D("zero-shot target", r => r.Ours.Points[0].Target), D("zero-shot shift", r => r.Ours.Points[0].MeanShift),
            D("fine-tuned target", r => End(r.Ours).Target), D("fine-tuned shift", r => End(r.Ours).MeanShift),
            D("best WiSE alpha", r => Best(r.Ours).Alpha), D("best WiSE target", r => Best(r.Ours).Target), D("best WiSE shift", r => Best(r.Ours).MeanShift),
            new StringDataFrameColumn("paper method", rows.Select(r => r.Paper?.Method ?? "-")),
            D("paper fine-tuned target", r => r.Paper is null ? null : End(r.Paper).Target), D("paper fine-tuned shift", r => r.Paper is null ? null : End(r.Paper).MeanShift),
            D("paper best WiSE alpha", r => r.Paper is null ? null : Best(r.Paper).Alpha), D("paper best WiSE shift", r => r.Paper is null ? null : Best(r.Paper).MeanShift));
    }

    /// <summary>One claim: what it measures (points of top-1), ours and the paper's (NaN where a side lacks the methods).</summary>
    public sealed record Claim(string What, double Ours, double Paper)
    {
        public bool SameSign => !double.IsNaN(Ours) && !double.IsNaN(Paper) && Math.Sign(Math.Round(Ours, 2)) == Math.Sign(Math.Round(Paper, 2));
    }

    /// <summary>
    /// The study's robustness claims on the methods run: (1) PEFT keeps more shift accuracy than full FT (mean shift
    /// top-1 of the PEFT methods' fine-tuned points minus full FT's); (2) WiSE lifts full FT's shift accuracy (best WiSE
    /// point minus fine-tuned point) and (3) what that costs on the target; (4) WiSE on the PEFT methods, averaged.
    /// The paper's side uses the same methods' CLIP curves. Claims that need full FT or a PEFT method are left out without them.
    /// </summary>
    public static IReadOnlyList<Claim> Claims(IReadOnlyList<WiseCurve> ours)
    {
        var claims = new List<Claim>();
        var full = ours.FirstOrDefault(c => c.Method == "full");
        var peft = ours.Where(c => c.Method is not ("full" or "linear")).ToList();
        var paperFull = PaperCurve("full");
        var paperPeft = peft.Select(c => PaperCurve(c.Method)).OfType<WiseCurve>().ToList();
        double Mean(IEnumerable<double> xs) => xs.DefaultIfEmpty(double.NaN).Average();
        if (full is not null && peft.Count > 0)
            claims.Add(new("PEFT - full FT, mean shift top-1 (fine-tuned)", Mean(peft.Select(c => End(c).MeanShift)) - End(full).MeanShift,
                paperFull is null ? double.NaN : Mean(paperPeft.Select(c => End(c).MeanShift)) - End(paperFull).MeanShift));
        if (full is not null)
        {
            claims.Add(new("WiSE gain on full FT: shift (best alpha - fine-tuned)", Best(full).MeanShift - End(full).MeanShift,
                paperFull is null ? double.NaN : Best(paperFull).MeanShift - End(paperFull).MeanShift));
            claims.Add(new("WiSE on full FT: target (best alpha - fine-tuned)", Best(full).Target - End(full).Target,
                paperFull is null ? double.NaN : Best(paperFull).Target - End(paperFull).Target));
        }
        if (peft.Count > 0)
            claims.Add(new("WiSE gain on PEFT (mean): shift (best alpha - fine-tuned)", Mean(peft.Select(c => Best(c).MeanShift - End(c).MeanShift)),
                Mean(paperPeft.Select(c => Best(c).MeanShift - End(c).MeanShift))));
        return claims;
    }

    /// <summary>The claims as a table: claim, ours, paper, same sign.</summary>
    public static DataFrame ClaimsTable(IReadOnlyList<Claim> claims) => new(
        new StringDataFrameColumn("points of top-1", claims.Select(c => c.What)),
        new PrimitiveDataFrameColumn<double>("ours", claims.Select(c => Math.Round(c.Ours, 2))),
        new PrimitiveDataFrameColumn<double>("paper", claims.Select(c => double.IsNaN(c.Paper) ? (double?)null : Math.Round(c.Paper, 2))),
        new StringDataFrameColumn("same sign", claims.Select(c => double.IsNaN(c.Paper) ? "-" : c.SameSign ? "yes" : "NO")));

    /// <summary>One sentence per claim, saying whether ours has the paper's sign.</summary>
    public static IEnumerable<string> Sentences(IReadOnlyList<Claim> claims) =>
        claims.Select(c => string.Create(CultureInfo.InvariantCulture,
            $"{c.What}: ours {c.Ours:+0.0;-0.0;0.0}, paper {c.Paper:+0.0;-0.0;0.0} -> {(double.IsNaN(c.Paper) ? "no paper number for these methods" : c.SameSign ? "the paper's sign" : "NOT the paper's sign")}"));

    /// <summary>The index page's line for Finding 4.</summary>
    public static string FindingLine(IReadOnlyList<WiseCurve> ours)
    {
        var claims = Claims(ours);
        string Part(string prefix, string label) => claims.FirstOrDefault(c => c.What.StartsWith(prefix, StringComparison.Ordinal)) is { } c
            ? string.Create(CultureInfo.InvariantCulture, $"{label} {c.Ours:+0.0;-0.0;0.0}") : "";
        string Paper(string prefix, string label) => claims.FirstOrDefault(c => c.What.StartsWith(prefix, StringComparison.Ordinal)) is { } c && !double.IsNaN(c.Paper)
            ? string.Create(CultureInfo.InvariantCulture, $"{label} {c.Paper:+0.0;-0.0;0.0}") : "";
        string Join(params string[] parts) => string.Join(", ", parts.Where(p => p.Length > 0));
        var zs = ours.Count > 0 ? string.Create(CultureInfo.InvariantCulture, $"zero-shot {ours[0].Points[0].Target:F1} / {ours[0].Points[0].MeanShift:F1} (MNIST / mean shift)") : "";
        return $"Finding 4 (robustness and WiSE): mini suite: {Join(zs, Part("PEFT - full", "PEFT - full FT on shift"), Part("WiSE gain on full", "WiSE on full FT shift"), Part("WiSE gain on PEFT", "WiSE on PEFT shift"))} points; " +
               $"paper (CLIP, 100-shot ImageNet): {Join(Paper("PEFT - full", "PEFT - full FT on shift"), Paper("WiSE gain on full", "WiSE on full FT shift"), Paper("WiSE gain on PEFT", "WiSE on PEFT shift"))} points.";
    }
}
