using System.Globalization;
using System.Text.Json;
using Microsoft.Data.Analysis;
using PeftWorkbench.Analysis;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;
using XPlot.Plotly;

namespace PeftWorkbench.Findings;

/// <summary>
/// Finding 4 (notebook 05): fine-tuning costs full FT more of the zero-shot model's accuracy on distribution shifts than
/// it costs PEFT, and weight-space ensembles (WiSE) lift full FT's shift accuracy most. Ours: the mini ViT's zero-shot
/// digit head fine-tuned on MNIST, tested on the real shift (sklearn's 8x8 digits) and on corrupted MNIST, each set
/// apart; the study's: CLIP on 100-shot ImageNet against ImageNet-V2, -Sketch, -A and -R. Its run
/// (<see cref="Run"/>, over <see cref="Robustness.Curves"/>), tables, charts, claims with verdicts qualified by the
/// fine-tunings' val curves (lr selected on val200, as VTAB-1K's), and its one-line finding. (Named apart from <see cref="Robustness"/>, the
/// experiment it reads, so that notebooks importing both namespaces see one of each.)
/// </summary>
public sealed class ShiftRobustness
{
    /// <summary>Our one real distribution shift (another source of the same digits); every other set is a corruption.</summary>
    public const string RealShift = "digits";
    public IReadOnlyList<WiseCurve> Curves { get; }
    public Convergence? Diagnostics { get; }
    public IReadOnlyList<Claim> Claims { get; }
    /// <summary>How many fine-tunings <see cref="Run"/> trained and how many curves it read from the store (null elsewhere).</summary>
    public RunTally? Tally { get; private set; }

    ShiftRobustness(IReadOnlyList<WiseCurve> curves, Convergence? diagnostics)
    {
        Curves = curves; Diagnostics = diagnostics;
        Claims = ClaimsOf(curves, diagnostics?.Reading() ?? BudgetReading.Unchecked);
    }

    /// <summary>
    /// Fine-tunes each method from the zero-shot head with the profile's robustness recipe (<see cref="Profile.Robustness"/>:
    /// budget and wd; the lr selected on val200 from <see cref="Profile.RobustnessLrGrid"/>; its methods, alphas and images
    /// per set where not given) and reads the finding, with the diagnostics of <see cref="Diagnose"/>. Curves already in the
    /// store are read back, with the tune trials kept beside them.
    /// The methods run in turn through <see cref="Display.StoppableProgress.Each"/>, Study.RunAll's loop: an Interrupt ends
    /// <paramref name="log"/>'s line with "stopped (interrupted)" once (once in all where <paramref name="log"/> is another
    /// run's <see cref="Display.StoppableProgress.Nested"/> line). <paramref name="counted"/>: each line starts "[k/n] ",
    /// as RunAll's do (off by default: notebook 05 shows the robustness run's own lines, "lora: fine-tuning ...").
    /// </summary>
    public static ShiftRobustness Run(string profile, IReadOnlyList<string>? methods = null, long? seed = null, string? store = null,
        Action<string>? log = null, IProgress<TrainProgress>? progress = null, CancellationToken cancel = default, bool counted = false,
        string? backbone = null)
    {
        var p = Profiles.Get(profile);
        var options = p.Robustness with { Seed = seed ?? p.Robustness.Seed };
        var alphas = p.RobustnessAlphas ?? Wise.DefaultAlphas;
        var tuning = new Dictionary<string, IReadOnlyList<TrialRecord>?>();
        int fromStore = 0;
        using var line = new Display.StoppableProgress(log);
        using var sets = new Robustness.ShiftSets(null, p.RobustnessImagesPerSet, backbone); // read and scored zero-shot once, for every method that trains
        var curves = line.Each(methods ?? p.RobustnessMethods, m => m, (m, step) =>
            Robustness.Curves(new[] { m }, options, alphas, log: line.Line is { } show && counted ? s => show($"{step.Counter} {s}") : line.Line, store: store,
                progress: progress, cancel: cancel, limit: p.RobustnessImagesPerSet, select: p.RobustnessSelection,
                tuning: t => { tuning[t.Method] = t.Trials; if (t.FromStore) fromStore++; }, backbone: backbone, shared: sets)[0], cancel, announce: counted);
        return new ShiftRobustness(curves, Diagnose(curves, tuning, p.TieBreak)) { Tally = new RunTally(curves.Count - fromStore, fromStore, "curves") };
    }

    /// <summary>
    /// The convergence diagnostics of robustness fine-tunings, as of any protocol run: each method's tune trials (val200
    /// every epoch, lr selected as VTAB-1K's), its selection, and as its "final" the fine-tuned model's MNIST test top-1
    /// (alpha 1). A curve without tune trials on record (none given, or a damaged tuning.json) reads as unknown.
    /// </summary>
    public static Convergence Diagnose(IReadOnlyList<WiseCurve> curves, IReadOnlyDictionary<string, IReadOnlyList<TrialRecord>?> tuning,
        TieBreak tieBreak = TieBreak.FewestParameters) =>
        Convergence.Of(curves.Select(c =>
        {
            var trials = tuning.TryGetValue(c.Method, out var t) && t is not null ? t : Array.Empty<TrialRecord>();
            var selected = Protocol.Select(trials, tieBreak);
            var config = selected?.Config ?? new TrialConfig { Task = c.Task, Method = c.Method, Protocol = Robustness.TrialProtocol };
            var final = new TrialRecord
            {
                Key = (config with { Phase = "final" }).Key, Config = config with { Phase = "final" }, Top1Last = End(c).Target,
                LossCurve = selected?.LossCurve, Epochs = selected?.Epochs ?? 0,
            };
            return new RunTrials(c.Task, c.Method, trials, selected, final);
        }), _ => 10);

    /// <summary>The finding over curves alone (tests, or curves from elsewhere); <paramref name="diagnostics"/> null: no budget check.</summary>
    public static ShiftRobustness From(IReadOnlyList<WiseCurve> curves, Convergence? diagnostics = null) => new(curves, diagnostics);

    // ---------------------------------------------------------------- claims

    /// <summary>The paper's curve for one of our methods: the same id, or the id with the study's capacity suffix (lora -> lora_32).</summary>
    public static WiseCurve? PaperCurve(string method) =>
        Wise.PaperCurves().Where(c => c.Method == method || c.Method.StartsWith(method + "_", StringComparison.Ordinal)).OrderBy(c => c.Method.Length).FirstOrDefault();

    /// <summary>The alpha with the best average of target and mean shift top-1 (the trade-off Figure 1c shows).</summary>
    public static WisePoint Best(WiseCurve c) => c.Points.OrderByDescending(p => (p.Target + p.MeanShift) / 2).ThenBy(p => p.Alpha).First();

    /// <summary>The fine-tuned model: alpha 1.</summary>
    public static WisePoint End(WiseCurve c) => c.Points.First(p => p.Alpha == 1);

    static bool IsPeft(WiseCurve c) => c.Method is not (SimilarAccuracy.Full or SimilarAccuracy.Linear);

    /// <summary>Mean PEFT fine-tuned top-1 minus full FT's on one set (<paramref name="set"/> null: the mean over the shift sets).</summary>
    public static double? PeftMinusFull(IReadOnlyList<WiseCurve> curves, string? set)
    {
        var full = curves.FirstOrDefault(c => c.Method == SimilarAccuracy.Full);
        var peft = curves.Where(IsPeft).ToList();
        if (full is null || peft.Count == 0) return null;
        double Of(WiseCurve c) => set is null ? End(c).MeanShift : End(c).Shifts.TryGetValue(set, out var v) ? v : double.NaN;
        var gap = peft.Average(Of) - Of(full);
        return double.IsFinite(gap) ? gap : null;
    }

    /// <summary>The study's curves for the methods of <paramref name="ours"/> (full FT and the PEFT methods it ran).</summary>
    public static IReadOnlyList<WiseCurve> PaperCurvesLike(IReadOnlyList<WiseCurve> ours) =>
        ours.Select(c => PaperCurve(c.Method) is { } p ? p with { Method = c.Method } : null).OfType<WiseCurve>().ToList();

    static bool SameSign(double o, double p) => Math.Sign(Math.Round(o, 1)) == Math.Sign(Math.Round(p, 1));

    /// <summary>
    /// The claims of finding 4, each on the methods both sides ran: PEFT minus full FT (fine-tuned) on the real shift,
    /// on each corruption and on the mean over our sets, against the study's mean over its four natural shifts (it ran
    /// no corruptions: a corruption's rule is the study's sign); WiSE's shift gain on full FT; and that gain on full FT
    /// minus the PEFT methods' (WiSE helps full FT most). Every rule: the study's sign (numbers within 0.05 of 0 count as 0).
    /// </summary>
    public static IReadOnlyList<Claim> ClaimsOf(IReadOnlyList<WiseCurve> ours, BudgetReading budget)
    {
        var claims = new List<Claim>();
        var paper = PaperCurvesLike(ours);
        var full = ours.FirstOrDefault(c => c.Method == SimilarAccuracy.Full);
        var paperFull = paper.FirstOrDefault(c => c.Method == SimilarAccuracy.Full);
        double? paperGap = PeftMinusFull(paper, null);
        string perSet = paperFull is null ? "" : "the study's per set: " + string.Join(", ", Paper.ClipShifts.Select(s =>
            PeftMinusFull(paper, s) is double g ? $"{s} {g.ToString("+0.0;-0.0;0.0", CultureInfo.InvariantCulture)}" : $"{s} n/a"));
        Claim Gap(string what, double? o, double? shown, string rule, string note) =>
            Verdicts.Make(what, o, shown, o is double x && paperGap is double y ? SameSign(x, y) : null, rule, budget, note: note);

        var sets = full is null ? Array.Empty<string>() : End(full).Shifts.Keys.OrderBy(s => s == RealShift ? 0 : 1).ToArray();
        foreach (var s in sets)
        {
            bool real = s == RealShift;
            claims.Add(Gap($"PEFT - full FT on {s} ({(real ? "the real shift" : "a corruption")}), fine-tuned", PeftMinusFull(ours, s), real ? paperGap : null,
                real ? "the study's sign (its mean over its 4 natural shifts)" : "the study's sign on its natural shifts (it ran no corruptions)", real ? perSet : ""));
        }
        if (sets.Length > 1)
            claims.Add(Gap($"PEFT - full FT, mean over our {sets.Length} shift sets, fine-tuned", PeftMinusFull(ours, null), paperGap, "the study's sign (its mean over 4 shifts)", ""));

        double Gain(WiseCurve c) => Best(c).MeanShift - End(c).MeanShift;
        if (full is not null)
        {
            double? p = paperFull is null ? null : Gain(paperFull);
            claims.Add(Verdicts.Make("WiSE on full FT: mean shift gain (best alpha - fine-tuned)", Gain(full), p, p is double y ? SameSign(Gain(full), y) : null,
                "the study's sign", budget, note: $"best alpha: ours {Best(full).Alpha:0.0#}" + (paperFull is null ? "" : $", the study's {Best(paperFull).Alpha:0.0#}")));
            var peft = ours.Where(IsPeft).ToList();
            var paperPeft = paper.Where(IsPeft).ToList();
            if (peft.Count > 0)
            {
                double o = Gain(full) - peft.Average(Gain);
                double? q = paperFull is null || paperPeft.Count == 0 ? null : Gain(paperFull) - paperPeft.Average(Gain);
                claims.Add(Verdicts.Make("WiSE's shift gain on full FT - on PEFT (mean)", o, q, q is double qv ? SameSign(o, qv) : null,
                    "the study's sign (WiSE helps full FT most)", budget));
            }
        }
        return claims;
    }

    // ---------------------------------------------------------------- tables, charts, lines

    /// <summary>The zero-shot model and each fine-tuned one on MNIST test and every shift set.</summary>
    public DataFrame EndPoints() => Robustness.EndPoints(Curves);

    /// <summary>
    /// One row per shift set, ours then the study's: source, set, kind (real shift, corruption), the zero-shot model's
    /// top-1, full FT's and the PEFT methods' mean (fine-tuned), and PEFT - full FT.
    /// </summary>
    public DataFrame PerShiftTable()
    {
        var paper = PaperCurvesLike(Curves);
        var rows = new List<(string Source, string Set, string Kind, double? Zero, double? Full, double? Peft)>();
        void Add(string source, IReadOnlyList<WiseCurve> curves, Func<string, string> kind, Func<string, int> order)
        {
            var full = curves.FirstOrDefault(c => c.Method == SimilarAccuracy.Full);
            var peft = curves.Where(IsPeft).ToList();
            var first = curves.FirstOrDefault();
            if (first is null) return;
            foreach (var s in End(first).Shifts.Keys.OrderBy(order))
                rows.Add((source, s, kind(s), first.Points.FirstOrDefault(x => x.Alpha == 0)?.Shifts[s], full is null ? null : End(full).Shifts[s],
                    peft.Count == 0 ? null : peft.Average(c => End(c).Shifts[s])));
        }
        Add("ours", Curves, s => s == RealShift ? "real shift" : "corruption", s => s == RealShift ? 0 : 1);
        Add("paper", paper, _ => "natural shift", s => Paper.ClipShifts.ToList().IndexOf(s));
        return new DataFrame(
            new StringDataFrameColumn("source", rows.Select(r => r.Source)), new StringDataFrameColumn("shift set", rows.Select(r => r.Set)),
            new StringDataFrameColumn("kind", rows.Select(r => r.Kind)),
            new PrimitiveDataFrameColumn<double>("zero-shot", rows.Select(r => Verdicts.Round(r.Zero))),
            new PrimitiveDataFrameColumn<double>("full FT", rows.Select(r => Verdicts.Round(r.Full))),
            new PrimitiveDataFrameColumn<double>("PEFT (mean)", rows.Select(r => Verdicts.Round(r.Peft))),
            new PrimitiveDataFrameColumn<double>("PEFT - full FT", rows.Select(r => Verdicts.Round(r.Peft - r.Full))));
    }

    /// <summary>Per method: zero-shot, fine-tuned and best-WiSE points (target / mean shift), ours then the paper's.</summary>
    public DataFrame WiseTable()
    {
        var rows = Curves.Select(c => (Ours: c, Paper: PaperCurve(c.Method))).ToList();
        DataFrameColumn D(string name, Func<(WiseCurve Ours, WiseCurve? Paper), double?> f) =>
            new PrimitiveDataFrameColumn<double>(name, rows.Select(r => Verdicts.Round(f(r))));
        return new DataFrame(new StringDataFrameColumn("method", rows.Select(r => r.Ours.Method)),
            D("zero-shot target", r => r.Ours.Points[0].Target), D("zero-shot shift", r => r.Ours.Points[0].MeanShift),
            D("fine-tuned target", r => End(r.Ours).Target), D("fine-tuned shift", r => End(r.Ours).MeanShift),
            D("best WiSE alpha", r => Best(r.Ours).Alpha), D("best WiSE target", r => Best(r.Ours).Target), D("best WiSE shift", r => Best(r.Ours).MeanShift),
            new StringDataFrameColumn("paper method", rows.Select(r => r.Paper?.Method ?? "-")),
            D("paper fine-tuned target", r => r.Paper is null ? null : End(r.Paper).Target), D("paper fine-tuned shift", r => r.Paper is null ? null : End(r.Paper).MeanShift),
            D("paper best WiSE alpha", r => r.Paper is null ? null : Best(r.Paper).Alpha), D("paper best WiSE shift", r => r.Paper is null ? null : Best(r.Paper).MeanShift));
    }

    public DataFrame ClaimsTable() => Verdicts.Table(Claims);

    public PlotlyChart Chart() => Plots.Charts.Robustness(Curves, "Target vs. shift accuracy with WiSE curves: ours (mini ViT, MNIST vs. mean of its shift sets)");

    public PlotlyChart PaperChart() => Plots.Charts.PaperRobustness();

    /// <summary>The verdicts in words, one line per claim, then the tally.</summary>
    public string Summary() => Verdicts.InWords(Claims) + "\n" + Verdicts.Tally(Claims) + ".";

    public string VerdictLine() => Verdicts.VerdictLine(Claims);

    /// <summary>The index page's line for finding 4: the tally, the zero-shot point, and each claim's numbers (ours; the paper's).</summary>
    public string FindingLine()
    {
        var zero = Curves.Count > 0 && Curves[0].Points.FirstOrDefault(p => p.Alpha == 0) is { } z
            ? string.Create(CultureInfo.InvariantCulture, $" Zero-shot {z.Target:F1} / {z.MeanShift:F1} (MNIST / mean shift).") : "";
        return $"Finding 4 (robustness and WiSE): {Verdicts.Tally(Claims)} ({Curves.Count} methods).{zero} " +
            string.Join("; ", Claims.Select(c => $"{c.What} {Fmt(c.Ours)} (paper {Fmt(c.Paper)})")) + ".";
    }

    static string Fmt(double? v) => v is double x ? x.ToString("+0.0;-0.0;0.0", CultureInfo.InvariantCulture) : "n/a";
}
