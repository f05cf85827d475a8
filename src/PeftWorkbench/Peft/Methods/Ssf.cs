using PeftWorkbench.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PeftWorkbench.Peft;

/// <summary>
/// SSF (scale and shift features): y * scale + shift after the patch embedding, norm1, qkv, attention
/// proj, norm2, fc1, fc2 and the final norm. Each follows a linear map (or a LayerNorm's affine), so it
/// merges into it: W' = diag(scale) W, b' = scale * b + shift.
/// </summary>
public sealed record SsfOptions : PeftOptions
{
    /// <summary>Standard deviation of the initial scale (around 1) and shift (around 0); the study's 0.02.</summary>
    public double InitStd { get; init; } = 0.02;

    public static PeftMethod Info { get; } = new(
        Id: "ssf", Name: "SSF", OptionsType: typeof(SsfOptions),
        Where: "scale and shift after patch embed, norm1, qkv, attn proj, norm2, fc1, fc2 and the final norm",
        Init: "scale N(1, 0.02), shift N(0, 0.02)",
        Options: new OptionSpec[] { new("ssf_init_std", nameof(InitStd), "std of the initial scale and shift") },
        Mergeable: true, IdentityAtInit: false,
        StrengthRule: "scale -> 1 + s (scale - 1), shift -> s shift");

    public override PeftMethod Describe() => Info;

    public override void Validate(VitConfig vit) => CheckRange(nameof(InitStd), InitStd, 0, 1);

    internal override void Attach(AttachContext ctx)
    {
        var pe = ctx.Vit.patch_embed as PatchEmbed ?? throw new InvalidOperationException($"patch_embed is a {ctx.Vit.patch_embed.GetType().Name}, not a PatchEmbed");
        ctx.Wrap(pe, nameof(pe.proj), proj => new SsfConv2d(proj, InitStd, ctx.State));
        for (int i = 0; i < ctx.Depth; i++)
        {
            var block = ctx.Block(i);
            var attn = ctx.Attention(i);
            var mlp = ctx.Mlp(i);
            ctx.Wrap(block, nameof(block.norm1), n => new SsfLayerNorm(n, InitStd, ctx.State));
            ctx.Wrap(attn, nameof(attn.qkv), l => new SsfLinear(l, InitStd, ctx.State));
            ctx.Wrap(attn, nameof(attn.proj), l => new SsfLinear(l, InitStd, ctx.State));
            ctx.Wrap(block, nameof(block.norm2), n => new SsfLayerNorm(n, InitStd, ctx.State));
            ctx.Wrap(mlp, nameof(mlp.fc1), l => new SsfLinear(l, InitStd, ctx.State));
            ctx.Wrap(mlp, nameof(mlp.fc2), l => new SsfLinear(l, InitStd, ctx.State));
        }
        ctx.Wrap(ctx.Vit, nameof(ctx.Vit.norm), n => new SsfLayerNorm(n, InitStd, ctx.State));
    }

    internal static (Parameter Scale, Parameter Shift) NewScaleShift(long n, double std)
    {
        var scale = torch.empty(n);
        var shift = torch.empty(n);
        using (torch.no_grad()) { nn.init.normal_(scale, 1, std); nn.init.normal_(shift, 0, std); }
        return (nn.Parameter(scale), nn.Parameter(shift));
    }

    /// <summary>Scale and shift at strength s: 1 + s (scale - 1) and s shift (the tensors themselves at s = 1).</summary>
    internal static (Tensor Scale, Tensor Shift) AtStrength(Tensor scale, Tensor shift, double s) =>
        s == 1 ? (scale, shift) : (scale.TowardOne(s), shift.Times(s));
}

/// <summary>A linear layer followed by SSF's scale and shift.</summary>
public sealed class SsfLinear : LinearSlot
{
    public Parameter ssf_scale, ssf_shift;

    public SsfLinear(nn.Module<Tensor, Tensor> slot, double std, PeftState state) : base(nameof(SsfLinear), slot, state)
    {
        (ssf_scale, ssf_shift) = SsfOptions.NewScaleShift(OutFeatures, std);
        RegisterComponents();
    }

    protected override Tensor ForwardTuned(Tensor x, double strength)
    {
        var (g, b) = SsfOptions.AtStrength(ssf_scale, ssf_shift, strength);
        return torch.addcmul(b, Base(x), g, 1);
    }

    protected override (Tensor Weight, Tensor Bias) MergedWeights(double strength)
    {
        var (g, b) = SsfOptions.AtStrength(ssf_scale, ssf_shift, strength);
        return (weight * g.unsqueeze(1), bias is null ? b.clone() : bias * g + b);
    }
}

/// <summary>A LayerNorm followed by SSF's scale and shift; merges into the LayerNorm's weight and bias.</summary>
public sealed class SsfLayerNorm : nn.Module<Tensor, Tensor>, IPeftWrapper, IMergeable
{
    public Parameter weight, bias;
    public Parameter ssf_scale, ssf_shift;
    readonly Ref<LayerNorm> original;
    readonly PeftState state;
    readonly TensorBackup backup = new();

    public SsfLayerNorm(nn.Module<Tensor, Tensor> slot, double std, PeftState state) : base(nameof(SsfLayerNorm))
    {
        var ln = slot as LayerNorm ?? throw new ArgumentException($"SSF wraps a LayerNorm here, found {slot.GetType().Name}");
        if (ln.bias is null) throw new ArgumentException("SSF needs a LayerNorm with a bias");
        original = new(ln);
        weight = ln.weight;
        bias = ln.bias;
        this.state = state;
        (ssf_scale, ssf_shift) = SsfOptions.NewScaleShift(weight.shape[0], std);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var y = F.layer_norm(x, original.Value.normalized_shape, weight, bias, original.Value.eps);
        if (state.Merged || state.Strength == 0) return y;
        var (g, b) = SsfOptions.AtStrength(ssf_scale, ssf_shift, state.Strength);
        return torch.addcmul(b, y, g, 1);
    }

    public void Merge(double strength)
    {
        if (!backup.IsEmpty) throw new InvalidOperationException("already merged");
        using var _ = torch.no_grad();
        var (g, b) = SsfOptions.AtStrength(ssf_scale, ssf_shift, strength);
        backup.Save(weight);
        backup.Save(bias);
        bias.mul_(g).add_(b);
        weight.mul_(g);
    }

    public void Unmerge() => backup.Restore();

    public nn.Module<Tensor, Tensor> Unwrap() => Rebind.LayerNorm(original.Value, weight, bias);
}

/// <summary>The patch-embedding convolution followed by SSF's per-channel scale and shift.</summary>
public sealed class SsfConv2d : nn.Module<Tensor, Tensor>, IPeftWrapper, IMergeable
{
    public Parameter weight;
    public Parameter? bias;
    public Parameter ssf_scale, ssf_shift;
    readonly Ref<Conv2d> original;
    readonly PeftState state;
    readonly InPlaceMerge merged = new();

    public SsfConv2d(nn.Module<Tensor, Tensor> slot, double std, PeftState state) : base(nameof(SsfConv2d))
    {
        var conv = slot as Conv2d ?? throw new ArgumentException($"SSF wraps the patch Conv2d here, found {slot.GetType().Name}");
        if (conv.padding is null || conv.groups != 1) throw new NotSupportedException("SSF's patch-embedding wrapper supports explicit padding and groups = 1");
        original = new(conv);
        weight = conv.weight;
        bias = conv.bias;
        this.state = state;
        (ssf_scale, ssf_shift) = SsfOptions.NewScaleShift(weight.shape[0], std);
        RegisterComponents();
    }

    Tensor Conv(Tensor x, Tensor? b)
    {
        var c = original.Value;
        return F.conv2d(x, weight, b, c.stride, c.padding, c.dilation, c.groups);
    }

    public override Tensor forward(Tensor x)
    {
        if (state.Merged) return Conv(x, bias ?? merged.Bias);
        var y = Conv(x, bias);
        if (state.Strength == 0) return y;
        var (g, b) = SsfOptions.AtStrength(ssf_scale, ssf_shift, state.Strength);
        return torch.addcmul(b.view(1, -1, 1, 1), y, g.view(1, -1, 1, 1), 1);
    }

    public void Merge(double strength)
    {
        merged.CheckUnmerged();
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var (g, b) = SsfOptions.AtStrength(ssf_scale, ssf_shift, strength);
        merged.Write(weight, bias, weight * g.view(-1, 1, 1, 1), bias is null ? b : bias * g + b);
    }

    public void Unmerge() => merged.Restore();

    public nn.Module<Tensor, Tensor> Unwrap() => Rebind.Conv2d(original.Value, weight, bias);
}
