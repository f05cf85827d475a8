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
        return new(vit.head.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone().DetachFromDisposeScope()));
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
                        saved[name] = p.detach().clone();
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

    /// <summary>Top-1 on the target and every shift set at each alpha (default 0, 0.1, ..., 1).</summary>
    public static WiseCurve Curve(PeftModel model, HeadSnapshot? startHead, ImageSet target, IReadOnlyDictionary<string, ImageSet> shifts,
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
        var opts = options ?? TrainOptions.ForProfile("default") with { Lr = 1e-3, WeightDecay = 1e-4 };
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

    /// <summary>MNIST test and the shift sets (default: sklearn digits and three corruptions at severity 3). Caller disposes.</summary>
    public static (ImageSet Target, Dictionary<string, ImageSet> Shifts) EvalSets(IReadOnlyList<string>? shifts = null)
    {
        var target = Suite.Mini.LoadSplit(Task, "test");
        var sets = new Dictionary<string, ImageSet>();
        try { foreach (var s in shifts ?? DefaultShifts) sets[s] = Suite.Mini.LoadShift(Task, s); }
        catch { target.Dispose(); foreach (var s in sets.Values) s.Dispose(); throw; }
        return (target, sets);
    }

    /// <summary>Fine-tunes each method from the zero-shot head and returns its WiSE curve over MNIST test and the shifts.</summary>
    public static IReadOnlyList<WiseCurve> Curves(IEnumerable<string> methods, TrainOptions? options = null, IReadOnlyList<double>? alphas = null,
        IReadOnlyList<string>? shifts = null, Action<string>? log = null)
    {
        var (target, sets) = EvalSets(shifts);
        try
        {
            var curves = new List<WiseCurve>();
            foreach (var m in methods)
            {
                using var run = FineTune(m, options);
                var curve = Wise.Curve(run.Model, run.ZeroShotHead, target, sets, alphas, task: Task);
                log?.Invoke($"{m}: zero-shot {curve.Points[0].Target:F1} / {curve.Points[0].MeanShift:F1}, fine-tuned {curve.Points[^1].Target:F1} / {curve.Points[^1].MeanShift:F1}");
                curves.Add(curve);
            }
            return curves;
        }
        finally { target.Dispose(); foreach (var s in sets.Values) s.Dispose(); }
    }

    /// <summary>All curves in one long table (method, alpha, target, shifts, mean_shift).</summary>
    public static DataFrame Table(IReadOnlyList<WiseCurve> curves)
    {
        var df = curves[0].ToDataFrame();
        foreach (var c in curves.Skip(1)) df = df.Append(c.ToDataFrame().Rows, inPlace: false);
        return df;
    }
}
