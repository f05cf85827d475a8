using PeftWorkbench.Training;
using PeftWorkbench.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PeftWorkbench.Peft;

/// <summary>
/// Takes a Linear slot (qkv, proj, fc1, fc2) and keeps its tensors under the same names ("weight",
/// "bias"), so the backbone's checkpoint keys do not change; a method adds its own tensors next to them
/// and defines the tuned forward. Merging reads the merged layer off the tuned map, which is affine in
/// its input when dropout is off: W' = f(I) - f(0), b' = f(0). Methods with a closed form override it.
/// </summary>
public abstract class LinearSlot : nn.Module<Tensor, Tensor>, IPeftWrapper, IMergeable
{
    public Parameter weight;
    public Parameter? bias;
    protected readonly PeftState State;
    readonly Ref<Linear> original;
    readonly InPlaceMerge merged = new();

    protected LinearSlot(string name, nn.Module<Tensor, Tensor> slot, PeftState state) : base(name)
    {
        var linear = slot as Linear ?? throw new ArgumentException($"{name} wraps a Linear layer, found {slot.GetType().Name} (is a method already attached?)");
        original = new(linear);
        weight = linear.weight;
        bias = linear.bias;
        State = state;
        // Subclasses call RegisterComponents() once their own modules exist.
    }

    public long InFeatures => weight.shape[1];
    public long OutFeatures => weight.shape[0];

    public sealed override Tensor forward(Tensor x)
    {
        if (State.Merged) return F.linear(x, weight, bias ?? merged.Bias);
        if (State.Strength == 0) return F.linear(x, weight, bias);
        return ForwardTuned(x, State.Strength);
    }

    /// <summary>The layer with the method's delta scaled by <paramref name="strength"/> (in (0, 1]).</summary>
    protected abstract Tensor ForwardTuned(Tensor x, double strength);

    /// <summary>Weight and bias of the tuned layer at <paramref name="strength"/>, dropout off.</summary>
    protected virtual (Tensor Weight, Tensor Bias) MergedWeights(double strength)
    {
        var eye = torch.eye(InFeatures, dtype: weight.dtype, device: weight.device).unsqueeze(0);
        var zero = torch.zeros(1, 1, InFeatures, dtype: weight.dtype, device: weight.device);
        var atZero = ForwardTuned(zero, strength).reshape(OutFeatures);
        var atEye = ForwardTuned(eye, strength)[0];
        return ((atEye - atZero).t(), atZero);
    }

    public void Merge(double strength)
    {
        merged.CheckUnmerged();
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        bool wasTraining = training;
        eval(); // dropout off while the merged map is read
        var (w, b) = MergedWeights(strength);
        train(wasTraining);
        merged.Write(weight, bias, w, b);
    }

    public void Unmerge() => merged.Restore();

    public nn.Module<Tensor, Tensor> Unwrap() => Rebind.Linear(original.Value, weight, bias);

    /// <summary>The unmodified layer's output.</summary>
    protected Tensor Base(Tensor x) => F.linear(x, weight, bias);

    /// <summary>1 + s (g - 1): a multiplicative factor at strength s (exact at s = 1).</summary>
    protected static Tensor Interpolate(Tensor g, double s) => s == 1 ? g : g.TowardOne(s);
}

/// <summary>
/// Gives a replaced layer back its tensors when a wrapper is taken off. After .to(device) the wrapper
/// holds new tensors and the old ones (still in the original layer) are disposed; TorchSharp's setters
/// read the old tensor's handle and fail on a disposed one, so the layer is then rebuilt around the
/// wrapper's tensors instead.
/// </summary>
internal static class Rebind
{
    public static Linear Linear(Linear original, Parameter weight, Parameter? bias)
    {
        if (ReferenceEquals(original.weight, weight) && ReferenceEquals(original.bias, bias)) return original;
        if (original.weight.IsInvalid) return nn.Linear(weight, bias);
        if (!ReferenceEquals(original.weight, weight)) original.weight = weight;
        if (!ReferenceEquals(original.bias, bias)) original.bias = bias;
        return original;
    }

    public static LayerNorm LayerNorm(LayerNorm original, Parameter weight, Parameter? bias)
    {
        if (ReferenceEquals(original.weight, weight) && ReferenceEquals(original.bias, bias)) return original;
        var target = original.weight.IsInvalid ? nn.LayerNorm(original.normalized_shape, original.eps) : original;
        if (!ReferenceEquals(target.weight, weight)) target.weight = weight;
        if (!ReferenceEquals(target.bias, bias)) target.bias = bias;
        return target;
    }

    public static Conv2d Conv2d(Conv2d original, Parameter weight, Parameter? bias)
    {
        if (ReferenceEquals(original.weight, weight) && ReferenceEquals(original.bias, bias)) return original;
        var c = original;
        var target = c.weight.IsInvalid
            ? nn.Conv2d(c.in_channels, c.out_channels, (c.kernel_size[0], c.kernel_size[1]), (c.stride[0], c.stride[1]),
                (c.padding![0], c.padding[^1]), (c.dilation[0], c.dilation[1]), groups: c.groups, bias: bias is not null)
            : c;
        if (!ReferenceEquals(target.weight, weight)) target.weight = weight;
        if (!ReferenceEquals(target.bias, bias)) target.bias = bias;
        return target;
    }
}

/// <summary>
/// Wraps a composite slot without renaming what is inside: the wrapped module's children (qkv, proj, fc1,
/// norm1, ...) are registered on the wrapper under their own names, so "blocks.3.attn.qkv.weight" stays
/// "blocks.3.attn.qkv.weight" and train()/eval()/to() still reach them. Only modules whose tensors all live
/// in children can be wrapped this way (Attention, Mlp, Block, Identity do).
/// </summary>
public abstract class TransparentWrapper : nn.Module<Tensor, Tensor>, IPeftWrapper
{
    readonly Ref<nn.Module<Tensor, Tensor>> inner;
    protected readonly PeftState State;

    protected TransparentWrapper(string name, nn.Module<Tensor, Tensor> wrapped, PeftState state) : base(name)
    {
        if (wrapped is IPeftWrapper) throw new InvalidOperationException($"{wrapped.GetType().Name} is already a PEFT wrapper: attach one method per model");
        if (wrapped.named_parameters(false).Any() || wrapped.named_buffers(false).Any())
            throw new ArgumentException($"{name} cannot wrap {wrapped.GetType().Name}: it holds tensors of its own, not only in child modules");
        inner = new(wrapped);
        State = state;
        foreach (var (childName, child) in wrapped.named_children()) register_module(childName, child);
    }

    protected Tensor Inner(Tensor x) => inner.Value.call(x);

    public nn.Module<Tensor, Tensor> Unwrap() => inner.Value;
}

/// <summary>
/// A branch in parallel with the attention or MLP slot (ConvPass, AdaptFormer): slot(x') + s * branch(x).
/// x' is the slot's own input, or with <paramref name="deferredNorm"/> the normalised input while the
/// branch sees the un-normalised one (AdaptFormer's adapter reads the block input before norm2).
/// </summary>
public sealed class ParallelBranch : TransparentWrapper
{
    public nn.Module<Tensor, Tensor> adapter;
    readonly Ref<DeferredLayerNorm>? deferredNorm;
    readonly Ref<DeferredDropPath>? dropPath;

    /// <param name="dropPath">The block's drop path for this branch, deferred: with it, branch and adapter are
    /// dropped here with independent masks (the study's block.py), and the block's own drop path passes through.</param>
    public ParallelBranch(nn.Module<Tensor, Tensor> wrapped, nn.Module<Tensor, Tensor> branch, PeftState state, DeferredLayerNorm? deferredNorm = null,
        DeferredDropPath? dropPath = null)
        : base(nameof(ParallelBranch), wrapped, state)
    {
        adapter = branch;
        this.deferredNorm = deferredNorm is null ? null : new(deferredNorm);
        this.dropPath = dropPath is null ? null : new(dropPath);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var y = Inner(deferredNorm is null ? x : deferredNorm.Value.Normalize(x));
        if (dropPath is not null) y = dropPath.Value.Drop(y);
        if (State.Strength == 0) return y;
        var delta = adapter.call(x);
        if (dropPath is not null) delta = dropPath.Value.Drop(delta);
        return State.Strength == 1 ? y + delta : y + delta.Times(State.Strength);
    }
}

/// <summary>
/// A block's drop path whose slot passes its input through; the branch wrapper before it calls <see cref="Drop"/>
/// where it wants masks (one fresh mask per call). Keeps the drop path module (no tensors of its own).
/// </summary>
public sealed class DeferredDropPath : TransparentWrapper
{
    public DeferredDropPath(nn.Module<Tensor, Tensor> dropPath) : base(nameof(DeferredDropPath), dropPath, new PeftState()) { RegisterComponents(); }

    public override Tensor forward(Tensor x) => x;

    public Tensor Drop(Tensor x) => Inner(x);
}

/// <summary>
/// A branch in series after the attention or MLP output (Houlsby, Pfeiffer), placed in the block's ls1/ls2
/// slot: slot(x + s * branch(x)).
/// </summary>
public sealed class SequentialBranch : TransparentWrapper
{
    public nn.Module<Tensor, Tensor> adapter;
    readonly Ref<nn.Module<Tensor, Tensor>>? dropPath;

    /// <param name="dropPath">The block's drop path for this branch: with it, the branch output is dropped before the
    /// adapter reads it, and the block drops the sum again with a mask of its own (the study's block.py).</param>
    public SequentialBranch(nn.Module<Tensor, Tensor> wrapped, nn.Module<Tensor, Tensor> branch, PeftState state, nn.Module<Tensor, Tensor>? dropPath = null)
        : base(nameof(SequentialBranch), wrapped, state)
    {
        adapter = branch;
        this.dropPath = dropPath is null ? null : new(dropPath);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (State.Strength == 0) return Inner(x);
        if (dropPath is not null) x = dropPath.Value.call(x);
        var delta = adapter.call(x);
        return Inner(State.Strength == 1 ? x + delta : x + delta.Times(State.Strength));
    }
}

/// <summary>
/// The token hook (VPT): wraps a block, optionally inserts learned prompt tokens right after the class
/// token before it, and optionally removes <c>strip</c> tokens after the class token once it has run. At
/// Strength 0 the block runs untouched (the pre-trained model).
/// </summary>
public sealed class PromptedBlock : TransparentWrapper, INoWeightDecay
{
    public Parameter? prompt_embeddings;
    public nn.Module<Tensor, Tensor>? prompt_dropout;
    readonly int strip;

    public PromptedBlock(Block block, PeftState state, Parameter? prompts, double dropout, int strip)
        : base(nameof(PromptedBlock), block, state)
    {
        prompt_embeddings = prompts;
        prompt_dropout = prompts is null ? null : nn.Dropout(dropout);
        this.strip = strip;
        RegisterComponents();
    }

    public int NumPrompts => prompt_embeddings is null ? 0 : (int)prompt_embeddings.shape[0];

    /// <summary>Prompts are tokens, like the class token: they never decay (timm's VPT keeps them out of decay too).</summary>
    public IEnumerable<string> NoWeightDecay() => prompt_embeddings is null ? Array.Empty<string>() : new[] { nameof(prompt_embeddings) };

    public override Tensor forward(Tensor x)
    {
        if (State.Strength == 0) return Inner(x);
        if (prompt_embeddings is not null)
        {
            var prompts = prompt_dropout!.call(prompt_embeddings).unsqueeze(0).expand(x.shape[0], -1, -1);
            x = torch.cat(new[] { x[.., ..1], prompts, x[.., 1..] }, 1);
        }
        var y = Inner(x);
        if (strip > 0)
        {
            if (y.shape[1] < 1 + strip) throw new InvalidOperationException($"PromptedBlock: {y.shape[1]} tokens, cannot remove {strip} prompts");
            y = torch.cat(new[] { y[.., ..1], y[.., (1 + strip)..] }, 1);
        }
        return y;
    }
}

/// <summary>
/// A layer's weight and optional bias overwritten by a merge and restorable bit for bit: the one merge/unmerge of the
/// wrappers that own a weight and a bias (<see cref="LinearSlot"/>, SSF's patch convolution). A layer without a bias
/// (CLIP's patch embedding) cannot take the merged shift in place: it is kept here as <see cref="Bias"/>.
/// </summary>
public sealed class InPlaceMerge
{
    readonly TensorBackup backup = new();

    /// <summary>The merged bias of a layer that has none; null while unmerged or when the layer has its own.</summary>
    public Tensor? Bias { get; private set; }

    public void CheckUnmerged()
    {
        if (!backup.IsEmpty || Bias is not null) throw new InvalidOperationException("already merged");
    }

    /// <summary>Saves <paramref name="weight"/> and <paramref name="bias"/>, then writes the merged values into them.</summary>
    public void Write(Tensor weight, Tensor? bias, Tensor mergedWeight, Tensor mergedBias)
    {
        CheckUnmerged();
        using var _ = torch.no_grad();
        backup.Save(weight);
        weight.copy_(mergedWeight);
        if (bias is not null) { backup.Save(bias); bias.copy_(mergedBias); }
        else Bias = mergedBias.DetachedClone().DetachFromDisposeScope();
    }

    public void Restore()
    {
        backup.Restore();
        Bias?.Dispose();
        Bias = null;
    }
}
