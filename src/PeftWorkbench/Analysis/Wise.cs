using Microsoft.Data.Analysis;
using PeftWorkbench.Data;
using PeftWorkbench.Peft;
using PeftWorkbench.Training;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Analysis;

/// <summary>Top-1 (percent) at one interpolation weight alpha on the target test set and on each shift set.</summary>
public sealed record WisePoint(double Alpha, double Target, IReadOnlyDictionary<string, double> Shifts)
{
    public double MeanShift => Shifts.Count == 0 ? double.NaN : Shifts.Values.Average();
}

/// <summary>One method's WiSE curve: alpha 0 (the start model) to 1 (the fine-tuned one).</summary>
public sealed record WiseCurve(string Method, string Task, IReadOnlyList<WisePoint> Points)
{
    /// <summary>alpha, target, one column per shift set, mean_shift.</summary>
    public DataFrame ToDataFrame()
    {
        var cols = new List<DataFrameColumn>
        {
            new StringDataFrameColumn("method", Points.Select(_ => Method)),
            new PrimitiveDataFrameColumn<double>("alpha", Points.Select(p => p.Alpha)),
            new PrimitiveDataFrameColumn<double>("target", Points.Select(p => p.Target)),
        };
        foreach (var s in Points.Count > 0 ? Points[0].Shifts.Keys : Enumerable.Empty<string>())
            cols.Add(new PrimitiveDataFrameColumn<double>(s, Points.Select(p => p.Shifts[s])));
        cols.Add(new PrimitiveDataFrameColumn<double>("mean_shift", Points.Select(p => p.MeanShift)));
        return new DataFrame(cols);
    }
}

/// <summary>The head's tensors as they were before fine-tuning (the zero-shot head in robustness runs), by name.</summary>
public sealed class HeadSnapshot : IDisposable
{
    public IReadOnlyDictionary<string, Tensor> Tensors { get; }
    HeadSnapshot(Dictionary<string, Tensor> t) => Tensors = t;

    public static HeadSnapshot Capture(VisionTransformer vit)
    {
        using var _ = torch.no_grad();
        return new(vit.head.named_parameters().ToDictionary(p => p.name, p => p.parameter.DetachedClone().DetachFromDisposeScope()));
    }

    public void Dispose() { foreach (var t in Tensors.Values) t.Dispose(); }
}

/// <summary>
/// Weight-space ensembles (WiSE-FT) of a fine-tuned <see cref="PeftModel"/>: at alpha the backbone is the method's
/// <see cref="PeftModel.Strength"/> = alpha (for full FT: every backbone weight pre + alpha (tuned - pre); for PEFT the
/// method's delta scaled), and the head is blended with the head fine-tuning started from, as the study's
/// merge_petl.py blends CLIP's fine-tuned head with its zero-shot head. So with method "full" every weight,
/// head included, moves between the start model and the fine-tuned one; alpha 0 and 1 give the end models exactly.
/// </summary>
public static class Wise
{
    /// <summary>0, 0.1, ..., 1 (each i / 10, so 0.3 is the double nearest 0.3).</summary>
    public static IReadOnlyList<double> DefaultAlphas { get; } = Enumerable.Range(0, 11).Select(i => i / 10.0).ToList();

    /// <summary>Runs <paramref name="f"/> with the model at <paramref name="alpha"/> (head blended when <paramref name="startHead"/>
    /// is given, else kept fine-tuned), then restores Strength and head exactly.</summary>
    public static T At<T>(PeftModel model, HeadSnapshot? startHead, double alpha, Func<T> f)
    {
        if (double.IsNaN(alpha) || alpha < 0 || alpha > 1) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "alpha must be in [0, 1] (0 = start model, 1 = fine-tuned).");
        double oldStrength = model.Strength;
        var head = model.model.head.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var saved = new Dictionary<string, Tensor>();
        try
        {
            model.Strength = alpha;
            if (startHead is not null && alpha != 1)
                using (torch.no_grad())
                    foreach (var (name, p) in head)
                    {
                        if (!startHead.Tensors.TryGetValue(name, out var start) || !start.shape.SequenceEqual(p.shape))
                            throw new ArgumentException($"The start head has no '{name}' of shape [{string.Join(", ", p.shape)}]: was it captured from this model's head?");
                        saved[name] = p.DetachedClone();
                        // alpha 0: exactly the start head; else start + alpha (tuned - start).
                        p.copy_(alpha == 0 ? start : start + (saved[name] - start) * alpha);
                    }
            return f();
        }
        finally
        {
            using (torch.no_grad()) foreach (var (name, t) in saved) { head[name].copy_(t); t.Dispose(); }
            model.Strength = oldStrength;
        }
    }

    /// <summary>Logits and labels of the model at <paramref name="alpha"/> on <paramref name="set"/>.</summary>
    public static EvalResult Evaluate(PeftModel model, HeadSnapshot? startHead, double alpha, ImageSet set, int batchSize = 256) =>
        At(model, startHead, alpha, () => Trainer.Evaluate(model, set, batchSize));

    /// <summary>
    /// Top-1 on the target and every shift set at each alpha (default 0, 0.1, ..., 1). The same numbers as
    /// <see cref="CurvePlain"/> (logits equal to float32 rounding), with less work per alpha:
    /// <list type="bullet">
    /// <item>mergeable methods (full FT, LoRA, BitFit, SSF, ...) at 0 &lt; alpha &lt; 1 are merged once per alpha, where the
    /// plain path re-interpolates every selected tensor per batch (about 10 % of a full-FT pass on the mini ViT);
    /// alpha 0 and 1 run unmerged, so the end points stay exactly the end models;</item>
    /// <item>methods whose Strength interpolates outputs (VPT: prompts add tokens, not weights) run the backbone twice
    /// in all, at Strength 0 and 1, keeping the pre-logit features; each alpha then only blends and applies the head
    /// (the plain path runs both passes at every alpha);</item>
    /// <item>a point given in <paramref name="known"/> (e.g. alpha 0 of a robustness run, which is the zero-shot model
    /// for every method) is taken as it is.</item>
    /// </list>
    /// </summary>
    public static WiseCurve Curve(PeftModel model, HeadSnapshot? startHead, ImageSet target, IReadOnlyDictionary<string, ImageSet> shifts,
        IReadOnlyList<double>? alphas = null, int batchSize = 256, string? task = null, IReadOnlyDictionary<double, WisePoint>? known = null,
        CancellationToken cancel = default)
    {
        var all = alphas ?? DefaultAlphas;
        var sets = new List<ImageSet> { target };
        sets.AddRange(shifts.Values);
        var todo = all.Where(x => known is null || !known.ContainsKey(x)).Distinct().ToList();
        var correct = new long[todo.Count, sets.Count];
        var seen = new long[todo.Count, sets.Count];
        Sweep(model, startHead, sets, todo, batchSize, (ai, si, logits) =>
        {
            long b = logits.shape[0];
            correct[ai, si] += logits.argmax(1).cpu().eq(sets[si].Labels.narrow(0, seen[ai, si], b)).sum().item<long>();
            seen[ai, si] += b;
        }, cancel);
        double Top1(int ai, int si) => sets[si].Count == 0 ? 0 : correct[ai, si] * 100.0 / sets[si].Count;
        WisePoint Computed(double alpha, int ai) => new(alpha, Top1(ai, 0), shifts.Keys.Select((k, i) => (k, Top1(ai, i + 1))).ToDictionary(p => p.k, p => p.Item2));
        var points = all.Select(alpha => known is not null && known.TryGetValue(alpha, out var given) ? given with { Alpha = alpha } : Computed(alpha, todo.IndexOf(alpha))).ToList();
        return new WiseCurve(model.Method.Id, task ?? target.Name, points);
    }

    /// <summary>
    /// The fast path under <see cref="Curve"/>: for each alpha (outer) and set (inner), hands every batch's logits
    /// (alpha index, set index, logits [B, C]; batches in order; disposed after the call) to <paramref name="onBatch"/>.
    /// Model, Strength and head are as before afterwards.
    /// </summary>
    internal static void Sweep(PeftModel model, HeadSnapshot? startHead, IReadOnlyList<ImageSet> sets, IReadOnlyList<double> alphas, int batchSize,
        Action<int, int, Tensor> onBatch, CancellationToken cancel = default)
    {
        if (batchSize <= 0) throw new ArgumentException($"Wise.Curve: batch size must be positive, got {batchSize}.");
        foreach (var s in sets)
            if (s.Images.dim() != 4 || s.Labels.shape[0] != s.Images.shape[0])
                throw new ArgumentException($"Wise.Curve: set '{s.Name}' has images [{string.Join(", ", s.Images.shape)}] and {s.Labels.shape[0]} labels.");
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var outputs = model.Method.StrengthOnOutput && alphas.Any(x => x > 0 && x < 1) ? EndFeatures.Of(model, sets, batchSize) : null;
            for (int ai = 0; ai < alphas.Count; ai++)
            {
                cancel.ThrowIfCancellationRequested();
                double alpha = alphas[ai];
                At(model, startHead, alpha, () =>
                {
                    if (outputs is not null) { outputs.Logits(model, alpha, (si, y) => onBatch(ai, si, y)); return 0; }
                    bool merge = model.CanMerge && alpha > 0 && alpha < 1;
                    if (merge) model.Merge();
                    try { for (int si = 0; si < sets.Count; si++) Logits(model, sets[si], batchSize, y => onBatch(ai, si, y)); }
                    finally { if (merge) model.Unmerge(); }
                    return 0;
                });
            }
        }
        finally { model.train(wasTraining); }
    }

    /// <summary>The model's logits batch by batch (eval mode assumed), inputs moved to the model's device and dtype as
    /// Trainer.Evaluate does; no logits kept.</summary>
    static void Logits(nn.Module<Tensor, Tensor> model, ImageSet set, int batchSize, Action<Tensor> onBatch)
    {
        var first = model.parameters().First(p => p.is_floating_point());
        ThreadBudget.Fit();
        using var _ = torch.inference_mode();
        for (long i = 0; i < set.Count; i += batchSize)
        {
            using var scope = torch.NewDisposeScope();
            var x = set.Images.narrow(0, i, Math.Min(batchSize, set.Count - i)).to(first.dtype, first.device);
            onBatch(model.call(x).to(torch.float32));
        }
    }

    /// <summary>Top-1 of a module as it stands (eval mode), counted batch by batch.</summary>
    internal static double Top1(nn.Module<Tensor, Tensor> model, ImageSet set, int batchSize)
    {
        long correct = 0, at = 0;
        Logits(model, set, batchSize, y => { long b = y.shape[0]; correct += y.argmax(1).cpu().eq(set.Labels.narrow(0, at, b)).sum().item<long>(); at += b; });
        return set.Count == 0 ? 0 : correct * 100.0 / set.Count;
    }

    /// <summary>The reference path of <see cref="Curve"/>: <see cref="At"/> and <see cref="Trainer.Evaluate(nn.Module{Tensor, Tensor}, ImageSet, int)"/>
    /// per set and alpha, nothing shared between alphas. Kept for the equality test and `peft bench wise`.</summary>
    public static WiseCurve CurvePlain(PeftModel model, HeadSnapshot? startHead, ImageSet target, IReadOnlyDictionary<string, ImageSet> shifts,
        IReadOnlyList<double>? alphas = null, int batchSize = 256, string? task = null)
    {
        var points = new List<WisePoint>();
        foreach (var alpha in alphas ?? DefaultAlphas)
            points.Add(At(model, startHead, alpha, () =>
            {
                double Top1(ImageSet s) { using var r = Trainer.Evaluate(model, s, batchSize); return r.Top1; }
                return new WisePoint(alpha, Top1(target), shifts.ToDictionary(kv => kv.Key, kv => Top1(kv.Value)));
            }));
        return new WiseCurve(model.Method.Id, task ?? target.Name, points);
    }

    /// <summary>
    /// For methods whose Strength interpolates outputs (VPT): the pre-logit features of every set at Strength 0 and 1,
    /// computed once. At alpha the logits are head(f0) + (head(f1) - head(f0)) alpha with the head as it stands (blended),
    /// the same arithmetic, batch by batch, as PeftModel's two-pass forward.
    /// </summary>
    sealed class EndFeatures : IDisposable
    {
        readonly List<(List<Tensor> F0, List<Tensor> F1)> perSet = new();

        public static EndFeatures Of(PeftModel model, IReadOnlyList<ImageSet> sets, int batchSize)
        {
            var e = new EndFeatures();
            double old = model.Strength;
            bool wasTraining = model.training;
            model.eval();
            try
            {
                foreach (var set in sets)
                {
                    var (f0, f1) = (new List<Tensor>(), new List<Tensor>());
                    e.perSet.Add((f0, f1));
                    using var _ = torch.inference_mode();
                    for (long i = 0; i < set.Count; i += batchSize)
                    {
                        using var scope = torch.NewDisposeScope();
                        var x = set.Images.narrow(0, i, Math.Min(batchSize, set.Count - i));
                        model.Strength = 0;
                        f0.Add(model.model.ForwardHead(model.ForwardFeatures(x), preLogits: true).contiguous().MoveToOuterDisposeScope());
                        model.Strength = 1;
                        f1.Add(model.model.ForwardHead(model.ForwardFeatures(x), preLogits: true).contiguous().MoveToOuterDisposeScope());
                    }
                }
                return e;
            }
            catch { e.Dispose(); throw; }
            finally { model.Strength = old; model.train(wasTraining); }
        }

        public void Logits(PeftModel model, double alpha, Action<int, Tensor> onBatch)
        {
            var head = model.model.head;
            using var _ = torch.inference_mode();
            for (int si = 0; si < perSet.Count; si++)
            {
                var (f0, f1) = perSet[si];
                for (int j = 0; j < f0.Count; j++)
                {
                    using var scope = torch.NewDisposeScope();
                    var y0 = head.call(f0[j]);
                    // alpha 0 and 1: exactly one end (PeftModel runs one pass there).
                    onBatch(si, (alpha == 0 ? y0 : alpha == 1 ? head.call(f1[j]) : y0 + (head.call(f1[j]) - y0) * alpha).to(torch.float32));
                }
            }
        }

        public void Dispose() { foreach (var (a, b) in perSet) { foreach (var t in a) t.Dispose(); foreach (var t in b) t.Dispose(); } }
    }

    /// <summary>The paper's CLIP WiSE curves: fs-imagenet against the mean of its four shift sets, per method.</summary>
    public static IReadOnlyList<WiseCurve> PaperCurves()
    {
        var rows = Paper.Read("clip_wise_interpolation.csv");
        double N(string s) => double.Parse(s, System.Globalization.CultureInfo.InvariantCulture);
        return rows.GroupBy(r => r["method"]).Select(g => new WiseCurve(g.Key, Paper.ClipTarget,
            g.GroupBy(r => N(r["alpha_weight_on_finetuned"])).OrderBy(a => a.Key).Select(a => new WisePoint(a.Key,
                a.Where(r => r["eval_set"] == Paper.ClipTarget).Select(r => N(r["top1"])).DefaultIfEmpty(double.NaN).First(),
                a.Where(r => Paper.ClipShifts.Contains(r["eval_set"])).ToDictionary(r => r["eval_set"], r => N(r["top1"])))).ToList())).ToList();
    }
}

/// <summary>A WiSE curve as JSON (curve.json in a robustness run's folder), written whole or not at all.</summary>
public static class CurveFile
{
    public const string FileName = "curve.json";

    public static void Write(string dir, WiseCurve curve)
    {
        Checkpoints.AtomicFile.WriteText(Path.Combine(dir, FileName), System.Text.Json.JsonSerializer.Serialize(new Stored(curve.Method, curve.Task,
            curve.Points.Select(p => new StoredPoint(p.Alpha, p.Target, p.Shifts.ToDictionary(kv => kv.Key, kv => kv.Value))).ToList())));
    }

    /// <summary>The curve in <paramref name="dir"/>, or null when there is none; a damaged file is an error naming it.</summary>
    public static WiseCurve? Read(string dir)
    {
        var path = Path.Combine(dir, FileName);
        if (!File.Exists(path)) return null;
        Stored? s;
        try { s = System.Text.Json.JsonSerializer.Deserialize<Stored>(File.ReadAllText(path)); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{path}: not a WiSE curve ({e.Message}); delete it to recompute.", e); }
        if (s?.Method is null || s.Task is null || s.Points is not { Count: > 0 } || s.Points.Any(p => p.Shifts is null))
            throw new InvalidDataException($"{path}: not a WiSE curve (method, task or points missing); delete it to recompute.");
        return new WiseCurve(s.Method, s.Task, s.Points.Select(p => new WisePoint(p.Alpha, p.Target, p.Shifts)).ToList());
    }

    sealed record Stored(string Method, string Task, List<StoredPoint> Points);
    sealed record StoredPoint(double Alpha, double Target, Dictionary<string, double> Shifts);
}
