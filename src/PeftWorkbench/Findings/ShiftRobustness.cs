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
/// fine-tunings' training-loss trends, and its one-line finding. (Named apart from <see cref="Robustness"/>, the
/// experiment it reads, so that notebooks importing both namespaces see one of each.)
/// </summary>
public sealed class ShiftRobustness
{
    /// <summary>Our one real distribution shift (another source of the same digits); every other set is a corruption.</summary>
    public const string RealShift = "digits";
    /// <summary>Kept beside a robustness run's curve.json: the fine-tuning's mean training loss per epoch (the diagnostics read it).</summary>
    public const string LossFile = "losses.json";

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
    /// budget, lr, wd; its methods, alphas and images per set where not given) and reads the finding. Curves already in the
    /// store are read back; so is each fine-tuning's loss curve where one was recorded (else its convergence is unknown).
    /// The methods run in turn through <see cref="Display.StoppableProgress.Each"/>, Study.RunAll's loop: an Interrupt ends
    /// <paramref name="log"/>'s line with "stopped (interrupted)" once (once in all where <paramref name="log"/> is another
    /// run's <see cref="Display.StoppableProgress.Nested"/> line). <paramref name="counted"/>: each line starts "[k/n] ",
    /// as RunAll's do (off by default: notebook 05 shows the robustness run's own lines, "lora: fine-tuning ...").
    /// </summary>
    public static ShiftRobustness Run(string profile, IReadOnlyList<string>? methods = null, long? seed = null, string? store = null,
        Action<string>? log = null, IProgress<TrainProgress>? progress = null, CancellationToken cancel = default, bool counted = false)
    {
        var p = Profiles.Get(profile);
        var options = p.Robustness with { Seed = seed ?? p.Robustness.Seed };
        var alphas = p.RobustnessAlphas ?? Wise.DefaultAlphas;
        var losses = new List<(string, string, IReadOnlyList<double>?, double?)>();
        var fromStore = new HashSet<string>();
        using var line = new Display.StoppableProgress(log);
        var curves = line.Each(methods ?? p.RobustnessMethods, m => m, (m, step) =>
            RunOne(m, line.Line is { } show && counted ? s => show($"{step.Counter} {s}") : line.Line), cancel, announce: counted);
        return new ShiftRobustness(curves, Convergence.OfFinals(losses)) { Tally = new RunTally(curves.Count - fromStore.Count, fromStore.Count, "curves") };

        WiseCurve RunOne(string m, Action<string>? show)
        {
            // One method per call, so that the losses recorded belong to it (the zero-shot point is evaluated again: seconds).
            var recorder = new LossRecorder(progress);
            var curve = Robustness.Curves(new[] { m }, options, alphas, log: show, store: store, progress: recorder, cancel: cancel, limit: p.RobustnessImagesPerSet)[0];
            var file = store is null ? null : Path.Combine(store, "robustness", Robustness.RunName(m, null, options, alphas, Robustness.DefaultShifts, p.RobustnessImagesPerSet), LossFile);
            IReadOnlyList<double>? loss = recorder.Epochs.Count > 0 ? recorder.Epochs : null;
            if (loss is null) fromStore.Add(m); // nothing trained: the curve came from the store
            if (loss is not null && file is not null && Directory.Exists(Path.GetDirectoryName(file)))
                Checkpoints.AtomicFile.Write(file, fs => JsonSerializer.Serialize(fs, loss));
            else if (loss is null && file is not null && File.Exists(file))
                loss = ReadLosses(file);
            losses.Add((curve.Task, m, loss, curve.Points.FirstOrDefault(x => x.Alpha == 1)?.Target));
            return curve;
        }
    }

    /// <summary>A loss file that does not read is "unknown" convergence, never a failed notebook: the curve beside it stands.</summary>
    static IReadOnlyList<double>? ReadLosses(string file)
    {
        try { return JsonSerializer.Deserialize<double[]>(File.ReadAllText(file)) is { Length: > 0 } l && l.All(double.IsFinite) ? l : null; }
        catch (Exception e) when (e is JsonException or IOException) { return null; }
    }

    /// <summary>The finding over curves alone (tests, or curves from elsewhere); <paramref name="diagnostics"/> null: no budget check.</summary>
    public static ShiftRobustness From(IReadOnlyList<WiseCurve> curves, Convergence? diagnostics = null) => new(curves, diagnostics);

    /// <summary>Forwards progress and keeps each epoch's mean training loss (the last "train" report of the epoch).</summary>
    sealed class LossRecorder(IProgress<TrainProgress>? inner) : IProgress<TrainProgress>
    {
        public List<double> Epochs { get; } = new();
        public void Report(TrainProgress p)
        {
            if (p.Phase == "train" && double.IsFinite(p.Loss))
            {
                while (Epochs.Count <= p.Epoch) Epochs.Add(double.NaN);
                Epochs[p.Epoch] = p.Loss;
            }
            inner?.Report(p);
        }
    }

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
