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

/// <summary>
/// The study's Figure 1c on the mini suite: the shipped mini ViT's upstream head reads MNIST digits zero-shot (its
/// outputs 0-9), as CLIP's text head reads ImageNet. Robustness runs fine-tune a method on MNIST starting from that
/// zero-shot head, so alpha 0 of the WiSE curve is exactly the zero-shot model; shifts are the real sklearn
/// digits and corrupted MNIST test sets.
/// </summary>
public static class Robustness
{
    public const string Task = "mnist";
    public static IReadOnlyList<string> DefaultShifts { get; } = new[] { "digits", "gaussian_noise-3", "gaussian_blur-3", "contrast-3" };

    /// <summary>The shipped mini ViT with its head cut to the 10 digit outputs: the zero-shot digit classifier.</summary>
    public static VisionTransformer ZeroShotModel()
    {
        var vit = VisionTransformer.Pretrained("mini");
        vit.KeepHeadRows(10);
        return vit;
    }

    /// <summary>A fine-tuned robustness model: the method on the zero-shot ViT, and the zero-shot head it started from.</summary>
    public sealed record Run(PeftModel Model, HeadSnapshot ZeroShotHead) : IDisposable
    {
        public void Dispose() { Model.Dispose(); ZeroShotHead.Dispose(); }
    }

    /// <summary>Attaches <paramref name="method"/> to the zero-shot model and trains it (head included) on
    /// <paramref name="train"/> (default: MNIST train800val200) with <paramref name="options"/> (default: the default
    /// profile's budget at lr 1e-3, wd 1e-4, seed 42).</summary>
    public static Run FineTune(string method, TrainOptions? options = null, IReadOnlyDictionary<string, string>? hp = null, ImageSet? train = null,
        IProgress<TrainProgress>? progress = null, CancellationToken cancel = default)
    {
        var opts = options ?? DefaultTraining;
        var vit = ZeroShotModel();
        HeadSnapshot? head = null;
        PeftModel? model = null;
        try
        {
            head = HeadSnapshot.Capture(vit);
            model = Peft.Peft.Attach(vit, method, hp, seed: opts.Seed);
            var owned = train is null ? Suite.Mini.LoadSplit(Task, "train800val200") : null;
            try
            {
                var history = Trainer.Fit(model, train ?? owned!, null, opts, progress, cancel);
                if (history.Cancelled) throw new OperationCanceledException($"robustness fine-tuning of {method} cancelled", cancel);
                if (history.Diverged) throw new InvalidOperationException($"robustness fine-tuning of {method} diverged (lr {opts.Lr}).");
            }
            finally { owned?.Dispose(); }
            model.eval();
            return new Run(model, head);
        }
        catch { if (model is not null) model.Dispose(); else vit.Dispose(); head?.Dispose(); throw; }
    }

    /// <summary>MNIST test and the shift sets (default: sklearn digits and three corruptions at severity 3). Caller disposes.
    /// <paramref name="limit"/> keeps at most that many images of each set, evenly spaced (the smoke profile's quick look; every
    /// figure under the other profiles uses the whole sets).</summary>
    public static (ImageSet Target, Dictionary<string, ImageSet> Shifts) EvalSets(IReadOnlyList<string>? shifts = null, int? limit = null)
    {
        if (limit is <= 0) throw new ArgumentOutOfRangeException(nameof(limit), limit, "limit must be positive (or null for the whole sets).");
        ImageSet Cut(ImageSet s)
        {
            if (limit is not int n || s.Count <= n) return s;
            using (s) return s.Subset(Enumerable.Range(0, n).Select(i => i * s.Count / n).ToArray());
        }
        var target = Cut(Suite.Mini.LoadSplit(Task, "test"));
        var sets = new Dictionary<string, ImageSet>();
        try { foreach (var s in shifts ?? DefaultShifts) sets[s] = Cut(Suite.Mini.LoadShift(Task, s)); }
        catch { target.Dispose(); foreach (var s in sets.Values) s.Dispose(); throw; }
        return (target, sets);
    }

    /// <summary>Top-1 of the zero-shot model on MNIST test and each shift set: alpha 0 of every method's robustness curve.</summary>
    public static WisePoint ZeroShotPoint(ImageSet target, IReadOnlyDictionary<string, ImageSet> shifts, int batchSize = 256)
    {
        using var vit = ZeroShotModel();
        vit.eval();
        return new WisePoint(0, Wise.Top1(vit, target, batchSize), shifts.ToDictionary(kv => kv.Key, kv => Wise.Top1(vit, kv.Value, batchSize)));
    }

    /// <summary>
    /// Fine-tunes each method from the zero-shot head and returns its WiSE curve over MNIST test and the shifts. The
    /// zero-shot point (alpha 0, the same for every method) is computed once. With a <paramref name="store"/> each
    /// curve is kept under store/robustness/&lt;method&gt;-&lt;hash of method, hyperparameters, training options, alphas,
    /// shifts&gt;/ (curve.json beside the fine-tuned adapter), and a curve found there is read, not recomputed.
    /// </summary>
    public static IReadOnlyList<WiseCurve> Curves(IEnumerable<string> methods, TrainOptions? options = null, IReadOnlyList<double>? alphas = null,
        IReadOnlyList<string>? shifts = null, Action<string>? log = null, string? store = null,
        IReadOnlyDictionary<string, string>? hp = null, IProgress<TrainProgress>? progress = null, CancellationToken cancel = default, int? limit = null)
    {
        var opts = options ?? DefaultTraining;
        var a = alphas ?? Wise.DefaultAlphas;
        var shiftNames = shifts ?? DefaultShifts;
        var curves = new List<WiseCurve>();
        ImageSet? target = null;
        Dictionary<string, ImageSet>? sets = null;
        WisePoint? zeroShot = null;
        try
        {
            foreach (var m in methods)
            {
                cancel.ThrowIfCancellationRequested();
                var dir = store is null ? null : Path.Combine(store, "robustness", RunName(m, hp, opts, a, shiftNames, limit));
                var curve = dir is null ? null : CurveFile.Read(dir);
                if (curve is null)
                {
                    if (target is null) (target, sets) = EvalSets(shiftNames, limit);
                    if (a.Contains(0)) zeroShot ??= ZeroShotPoint(target, sets!);
                    log?.Invoke($"{m}: fine-tuning from the zero-shot head ...");
                    using var run = FineTune(m, opts, hp, progress: progress, cancel: cancel);
                    log?.Invoke($"{m}: WiSE curve, {a.Count} alphas over {target.Count + sets!.Values.Sum(s => s.Count)} images ...");
                    curve = Wise.Curve(run.Model, run.ZeroShotHead, target, sets!, a, task: Task,
                        known: zeroShot is null ? null : new Dictionary<double, WisePoint> { [0] = zeroShot }, cancel: cancel);
                    if (dir is not null) { run.Model.SaveAdapter(dir); CurveFile.Write(dir, curve); }
                }
                else log?.Invoke($"{m}: read from {dir}");
                log?.Invoke($"{m}: zero-shot {curve.Points[0].Target:F1} / {curve.Points[0].MeanShift:F1}, fine-tuned {curve.Points[^1].Target:F1} / {curve.Points[^1].MeanShift:F1}");
                curves.Add(curve);
            }
            return curves;
        }
        finally { target?.Dispose(); foreach (var s in sets?.Values ?? Enumerable.Empty<ImageSet>()) s.Dispose(); }
    }

    /// <summary>The robustness runs' default training: the default profile's budget at lr 1e-3, wd 1e-4, seed 42.</summary>
    public static TrainOptions DefaultTraining => TrainOptions.ForProfile("default") with { Lr = 1e-3, WeightDecay = 1e-4 };

    /// <summary>The folder name of one robustness run in a store: method and a hash of everything its curve depends on.</summary>
    public static string RunName(string method, IReadOnlyDictionary<string, string>? hp, TrainOptions options, IReadOnlyList<double> alphas, IReadOnlyList<string> shifts, int? limit = null)
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        var key = string.Join("\n", Task, method, string.Join(",", (hp ?? new Dictionary<string, string>()).OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}")),
            InvariantRecord(options with { Device = null }), string.Join(",", alphas.Select(x => x.ToString("R", inv))), string.Join(",", shifts), limit?.ToString(inv) ?? "all", Workbench.Version);
        return $"{method}-{Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key)))[..12]}";
    }

    /// <summary>
    /// What a record's compiler-made ToString gives under the invariant culture ("TrainOptions { Epochs = 10, Lr = 0.001, ... }":
    /// every public instance property in declaration order, null as nothing), without touching the thread's culture. A
    /// robustness run's name hashes it, so stores written before (when RunName set the culture around ToString) still read.
    /// </summary>
    static string InvariantRecord<T>(T record) where T : class
    {
        var members = typeof(T).GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance)
            .Where(p => p.GetIndexParameters().Length == 0)
            .Select(p => p.GetValue(record) switch
            {
                null => $"{p.Name} = ",
                IFormattable f => $"{p.Name} = {f.ToString(null, System.Globalization.CultureInfo.InvariantCulture)}",
                var v => $"{p.Name} = {v}",
            });
        return $"{typeof(T).Name} {{ {string.Join(", ", members)} }}";
    }

    /// <summary>The zero-shot model (alpha 0 of the first curve, the same for every method) and each fine-tuned model
    /// (alpha 1): model, target, one column per shift set, mean_shift.</summary>
    public static DataFrame EndPoints(IReadOnlyList<WiseCurve> curves)
    {
        var rows = curves.Take(1).Select(c => ("zero-shot", c.Points.First(p => p.Alpha == 0)))
            .Concat(curves.Select(c => ($"{c.Method} (fine-tuned)", c.Points.First(p => p.Alpha == 1)))).ToList();
        var cols = new List<DataFrameColumn>
        {
            new StringDataFrameColumn("model", rows.Select(r => r.Item1)),
            new PrimitiveDataFrameColumn<double>("target", rows.Select(r => r.Item2.Target)),
        };
        foreach (var s in rows.Count > 0 ? rows[0].Item2.Shifts.Keys : Enumerable.Empty<string>())
            cols.Add(new PrimitiveDataFrameColumn<double>(s, rows.Select(r => r.Item2.Shifts[s])));
        cols.Add(new PrimitiveDataFrameColumn<double>("mean_shift", rows.Select(r => Math.Round(r.Item2.MeanShift, 2))));
        return new DataFrame(cols);
    }

    /// <summary>All curves in one long table (method, alpha, target, shifts, mean_shift).</summary>
    public static DataFrame Table(IReadOnlyList<WiseCurve> curves)
    {
        var df = curves[0].ToDataFrame();
        foreach (var c in curves.Skip(1)) df = df.Append(c.ToDataFrame().Rows, inPlace: false);
        return df;
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
