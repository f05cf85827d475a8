using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PeftWorkbench.Peft;

/// <summary>
/// AdaptFormer: a bottleneck adapter in parallel with the MLP branch, fed the block input before norm2:
/// mlp(norm2(x)) + s * up(dropout(relu(down(x)))). Since the adapter needs the input before norm2, the
/// normalisation moves into the MLP wrapper: norm2's slot keeps norm2's tensors (same keys) and passes x
/// through; the MLP wrapper normalises for the MLP and hands x unnormalised to the adapter.
/// </summary>
public sealed record AdaptFormerOptions : BottleneckAdapterOptions
{
    public static PeftMethod Info { get; } = new(
        Id: "adaptformer", Name: "AdaptFormer", OptionsType: typeof(AdaptFormerOptions),
        Where: "in parallel with the MLP branch, fed the block input before norm2",
        Init: "down Kaiming-uniform, up and biases zero; ReLU; dropout 0.1",
        Options: Specs(new object[] { 4, 16, 32 }, new object[] { 0.05, 0.1, 0.2 }),
        Mergeable: false, IdentityAtInit: true);

    public override PeftMethod Describe() => Info;

    private protected override void AttachTo(AttachContext ctx, Vit.Block block)
    {
        var norm = ctx.Wrap(block, nameof(block.norm2), n => new DeferredLayerNorm(n));
        var dp = OwnDropPath ? ctx.Wrap(block, nameof(block.drop_path2), p => new DeferredDropPath(p)) : null;
        ctx.Wrap(block, nameof(block.mlp), mlp => new ParallelBranch(mlp, NewAdapter(ctx, AdapterInit.LoraKaiming), ctx.State, norm, dp));
    }
}

/// <summary>
/// A LayerNorm whose slot passes its input through unchanged; the module after it calls
/// <see cref="Normalize"/> where it needs the normalised input. Keeps the LayerNorm's tensors and keys.
/// </summary>
public sealed class DeferredLayerNorm : nn.Module<Tensor, Tensor>, IPeftWrapper
{
    public Parameter weight;
    public Parameter? bias;
    readonly Ref<LayerNorm> original;

    public DeferredLayerNorm(nn.Module<Tensor, Tensor> slot) : base(nameof(DeferredLayerNorm))
    {
        var ln = slot as LayerNorm ?? throw new ArgumentException($"DeferredLayerNorm wraps a LayerNorm, found {slot.GetType().Name}");
        original = new(ln);
        weight = ln.weight;
        bias = ln.bias;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => x;

    public Tensor Normalize(Tensor x) => F.layer_norm(x, original.Value.normalized_shape, weight, bias, original.Value.eps);

    public nn.Module<Tensor, Tensor> Unwrap() => Rebind.LayerNorm(original.Value, weight, bias);
}
