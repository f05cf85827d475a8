using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Training;

/// <summary>
/// TorchSharp's AdamW (the same update, op for op, in float32) on one contiguous buffer per parameter group, so a
/// step is a handful of tensor ops per group instead of ~8 ops and several temporaries per tensor. The group's
/// parameters become views into its buffer (set_ under no_grad: autograd and the modules see the same Parameter
/// objects); <see cref="Dispose"/> gives each parameter its own storage back. Gradients live in a flat buffer too:
/// after the first step each parameter's .grad is a view into it, so backward accumulates there and zero_grad is one
/// op (a gradient someone replaced, as Bf16Masters does, is copied in and re-aliased). The update runs over chunks
/// of 1M elements with a preallocated scratch buffer: no allocation per step. A parameter that has no gradient
/// is skipped, as TorchSharp skips it (its step count does not
/// advance); while any parameter of a group lacks a gradient or lags in steps, that group updates tensor by tensor
/// on views of the same buffers, so the numbers never depend on which path ran.
/// </summary>
public sealed class FlatAdamW : OptimizerHelper
{
    sealed class Flat : IDisposable
    {
        public required AdamW.ParamGroup Group;
        public required Parameter[] Params;
        public required Tensor Values, ExpAvg, ExpAvgSq, Grads, Scratch;
        public required Tensor[] ExpAvgViews, ExpAvgSqViews, GradViews;
        public required long[] GradAddresses;
        /// <summary>The buffers cut into chunks once (p, m, v, g, scratch), so a step makes no views.</summary>
        public required (Tensor P, Tensor M, Tensor V, Tensor G, Tensor D)[] Chunks;
        public required long[] Steps;
        public void Dispose()
        {
            foreach (var t in new[] { Values, ExpAvg, ExpAvgSq, Grads, Scratch }.Concat(ExpAvgViews).Concat(ExpAvgSqViews).Concat(GradViews)) t.Dispose();
            foreach (var c in Chunks) { c.P.Dispose(); c.M.Dispose(); c.V.Dispose(); c.G.Dispose(); c.D.Dispose(); }
        }
    }

    /// <summary>Elements per chunk of the update, fixed when a group is flattened. 1M (4 MB per operand, within L3):
    /// on tiny-32 full FT, 64K chunks made the step 0.72x per-tensor's speed and 32K 1.15x, 1M 1.52x (`peft bench
    /// optimizer`, 3 rounds, load 3); every op still splits over libtorch's threads. Tests set it small to cross chunk edges.</summary>
    internal static long ChunkElements = 1 << 20;

    readonly List<Flat> flats = new();

    /// <summary>Groups as TorchSharp's AdamW takes them; each group's options (lr, betas, eps, weight decay) are
    /// read at every step, so a scheduler that sets <c>LearningRate</c> works as with the per-tensor optimizer.</summary>
    public FlatAdamW(IEnumerable<AdamW.ParamGroup> groups, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 0)
    {
        _parameter_groups = new List<ParamGroup>();
        var seen = new HashSet<IntPtr>();
        foreach (var g in groups)
        {
            g.Options ??= new AdamW.Options();
            var o = (AdamW.Options)g.Options;
            o.LearningRate ??= lr; o.InitialLearningRate = o.LearningRate.Value;
            o.beta1 ??= beta1; o.beta2 ??= beta2; o.eps ??= eps; o.weight_decay ??= weight_decay;
            o.amsgrad ??= false; o.maximize ??= false;
            if (o.amsgrad.Value || o.maximize.Value) throw new ArgumentException("FlatAdamW: amsgrad and maximize are not supported.");
            var ps = g.Parameters.ToArray();
            foreach (var p in ps)
            {
                if (p.dtype != ScalarType.Float32) throw new ArgumentException($"FlatAdamW: parameters must be float32 (the optimizer state is float32), got {p.dtype}.");
                if (!seen.Add(p.Handle)) throw new ArgumentException("FlatAdamW: a parameter appears in two groups.");
            }
            _parameter_groups.Add(g);
            if (ps.Length > 0) flats.Add(Flatten(g, ps));
        }
    }

    static Flat Flatten(AdamW.ParamGroup group, Parameter[] ps)
    {
        var (type, index) = (ps[0].device_type, ps[0].device_index);
        if (ps.Any(p => p.device_type != type || p.device_index != index)) throw new ArgumentException("FlatAdamW: a group's parameters must share one device.");
        using var _ = torch.no_grad();
        // Every intermediate is held by a variable and disposed after the native call that reads it: a temporary
        // (p.detach(), a narrow) that nothing references can be finalized during that call, and libtorch then reads a
        // freed tensor (a segfault in alias_with_sizes_and_strides, seen under load).
        Tensor values;
        {
            var detached = ps.Select(p => p.detach()).ToArray();
            var flat = detached.Select(d => d.reshape(-1)).ToArray();
            values = torch.cat(flat);
            foreach (var t in flat.Concat(detached)) t.Dispose();
        }
        long offset = 0;
        var avgViews = new Tensor[ps.Length];
        var sqViews = new Tensor[ps.Length];
        var gradViews = new Tensor[ps.Length];
        var expAvg = torch.zeros_like(values);
        var expAvgSq = torch.zeros_like(values);
        var grads = torch.zeros_like(values);
        for (int i = 0; i < ps.Length; i++)
        {
            long n = ps[i].numel();
            var shape = ps[i].shape;
            // The parameter's storage becomes its slice of the group's buffer (same values, copied by the cat above).
            using (var slice = values.narrow(0, offset, n))
            using (var view = slice.view(shape))
                ps[i].set_(view);
            avgViews[i] = ViewOf(expAvg, offset, n, shape);
            sqViews[i] = ViewOf(expAvgSq, offset, n, shape);
            gradViews[i] = ViewOf(grads, offset, n, shape);
            offset += n;
        }
        long total = values.numel();
        var scratch = torch.empty(Math.Min(total, ChunkElements), dtype: values.dtype, device: values.device);
        var chunks = new List<(Tensor, Tensor, Tensor, Tensor, Tensor)>();
        for (long s = 0; s < total; s += ChunkElements)
        {
            long len = Math.Min(ChunkElements, total - s);
            chunks.Add((values.narrow(0, s, len), expAvg.narrow(0, s, len), expAvgSq.narrow(0, s, len), grads.narrow(0, s, len), scratch.narrow(0, 0, len)));
        }
        return new Flat
        {
            Group = group, Params = ps, Values = values, ExpAvg = expAvg, ExpAvgSq = expAvgSq, Grads = grads, Scratch = scratch,
            ExpAvgViews = avgViews, ExpAvgSqViews = sqViews, GradViews = gradViews,
            GradAddresses = gradViews.Select(g => Address(g)).ToArray(), Chunks = chunks.ToArray(), Steps = new long[ps.Length],
        };
    }

    /// <summary>buffer[offset, offset + n) as <paramref name="shape"/>, the narrow kept alive through the view call.</summary>
    static Tensor ViewOf(Tensor buffer, long offset, long n, long[] shape)
    {
        using var slice = buffer.narrow(0, offset, n);
        return slice.view(shape);
    }

    /// <summary>Zeroes the gradients in place, as TorchSharp's optimizers do (one op per group once they are aliased).</summary>
    public override void zero_grad()
    {
        using var scope = torch.NewDisposeScope();
        foreach (var f in flats)
        {
            var grads = f.Params.Select(p => p.grad).ToArray();
            if (Aliased(f, grads)) { f.Grads.zero_(); continue; }
            foreach (var g in grads) g?.zero_();
        }
    }

    /// <summary>Where a tensor's first element lives: equal for two tensors only if they alias the same memory.</summary>
    static long Address(Tensor t)
    {
        using var storage = t.storage<float>();
        return (long)storage.data_ptr() + t.storage_offset() * sizeof(float);
    }

    static bool Aliased(Flat f, Tensor?[] grads)
    {
        for (int i = 0; i < grads.Length; i++)
            if (grads[i] is not { } g || Address(g) != f.GradAddresses[i]) return false;
        return true;
    }

    public override Tensor step(Func<Tensor>? closure = null)
    {
        Tensor? loss = null;
        if (closure is not null) using (torch.enable_grad()) loss = closure();
        using (torch.no_grad())
        using (torch.NewDisposeScope())
            foreach (var f in flats) Step(f);
        return loss!;
    }

    static void Step(Flat f)
    {
        var o = (AdamW.Options)f.Group.Options;
        double beta1 = o.beta1!.Value, beta2 = o.beta2!.Value, eps = o.eps!.Value, lr = o.LearningRate!.Value, wd = o.weight_decay!.Value;
        var grads = f.Params.Select(p => p.grad).ToArray();
        bool together = grads.All(g => g is not null) && f.Steps.All(s => s == f.Steps[0]);
        if (together)
        {
            long step = ++f.Steps[0];
            for (int i = 1; i < f.Steps.Length; i++) f.Steps[i] = step;
            // Gradients that are not (yet) views into the flat buffer are copied in, and the views become .grad.
            for (int i = 0; i < grads.Length; i++)
                if (Address(grads[i]!) != f.GradAddresses[i]) { f.GradViews[i].copy_(grads[i]!); f.Params[i].grad = f.GradViews[i]; }
            double sqrtBiasCorrection2 = Math.Sqrt(1 - Math.Pow(beta2, step)), stepSize = lr / (1 - Math.Pow(beta1, step));
            // TorchSharp's AdamW.step body, op for op, with the denominator written into scratch instead of allocated.
            // Explicit Scalars, disposed after the ops: an implicit one is freed by its finalizer, which can run during
            // the native call (libtorch then throws "Unknown scalar type"; see MomentumSgd).
            using Scalar decay = 1 - lr * wd, b1 = beta1, oneMinusB1 = 1 - beta1, b2 = beta2, oneMinusB2 = 1 - beta2,
                sqrtBc2 = sqrtBiasCorrection2, epsilon = eps, minusStep = -stepSize;
            foreach (var (p, m, v, g, d) in f.Chunks)
            {
                p.mul_(decay);
                m.mul_(b1).add_(g, alpha: oneMinusB1);
                v.mul_(b2).addcmul_(g, g, value: oneMinusB2);
                d.copy_(v).sqrt_().div_(sqrtBc2).add_(epsilon);
                p.addcdiv_(m, d, value: minusStep);
            }
            return;
        }
        // Some tensors lack a gradient (or did earlier): TorchSharp's per-tensor rule on views of the same buffers.
        for (int i = 0; i < f.Params.Length; i++)
        {
            if (grads[i] is not { } g) continue;
            long step = ++f.Steps[i];
            Update(f.Params[i], f.ExpAvgViews[i], f.ExpAvgSqViews[i], g, step, lr, beta1, beta2, eps, wd);
        }
    }

    // TorchSharp's AdamW.step body, op for op (so float32 results agree to rounding), for one tensor.
    static void Update(Tensor param, Tensor expAvg, Tensor expAvgSq, Tensor grad, long step,
        double lr, double beta1, double beta2, double eps, double wd)
    {
        double biasCorrection1 = 1 - Math.Pow(beta1, step);
        double biasCorrection2 = 1 - Math.Pow(beta2, step);
        using Scalar decay = 1 - lr * wd, b1 = beta1, oneMinusB1 = 1 - beta1, b2 = beta2, oneMinusB2 = 1 - beta2,
            sqrtBc2 = Math.Sqrt(biasCorrection2), epsilon = eps, minusStep = -(lr / biasCorrection1);
        param.mul_(decay);
        expAvg.mul_(b1).add_(grad, alpha: oneMinusB1);
        expAvgSq.mul_(b2).addcmul_(grad, grad, value: oneMinusB2);
        using var denom = expAvgSq.sqrt().div_(sqrtBc2).add_(epsilon);
        param.addcdiv_(expAvg, denom, value: minusStep);
    }

    /// <summary>The float32 state of a parameter: (steps taken, exp_avg, exp_avg_sq) as views (for tests and checks).</summary>
    public (long Step, Tensor ExpAvg, Tensor ExpAvgSq) StateOf(Parameter p)
    {
        foreach (var f in flats)
            for (int i = 0; i < f.Params.Length; i++)
                if (f.Params[i].Handle == p.Handle) return (f.Steps[i], f.ExpAvgViews[i], f.ExpAvgSqViews[i]);
        throw new ArgumentException("FlatAdamW.StateOf: the parameter is not in any group.");
    }

    /// <summary>Puts back a parameter's saved state (what <see cref="StateOf"/> gave), bit for bit: a resumed run
    /// (`peft pretrain --resume`) then takes the same steps as one never stopped.</summary>
    public void Restore(Parameter p, long step, Tensor expAvg, Tensor expAvgSq)
    {
        if (step < 0) throw new ArgumentOutOfRangeException(nameof(step), step, "optimizer step count must be >= 0");
        foreach (var f in flats)
            for (int i = 0; i < f.Params.Length; i++)
                if (f.Params[i].Handle == p.Handle)
                {
                    using var _ = torch.no_grad();
                    f.ExpAvgViews[i].copy_(expAvg);
                    f.ExpAvgSqViews[i].copy_(expAvgSq);
                    f.Steps[i] = step;
                    return;
                }
        throw new ArgumentException("FlatAdamW.Restore: the parameter is not in any group.");
    }

    public override StateDictionary state_dict() =>
        throw new NotSupportedException("FlatAdamW keeps no per-tensor state dictionary; use StateOf.");

    /// <summary>Each parameter gets its own storage back (same values), then the buffers go.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            using (torch.no_grad())
                foreach (var f in flats)
                {
                    foreach (var p in f.Params)
                        if (!p.IsInvalid)
                        {
                            using var detached = p.detach();
                            using var own = detached.clone();
                            p.set_(own);
                        }
                    f.Dispose();
                }
            flats.Clear();
        }
        base.Dispose(disposing);
    }
}
