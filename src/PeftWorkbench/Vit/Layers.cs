using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Vit;

/// <summary>Image to patch tokens: a strided convolution, flattened to [B, N, D] (timm's PatchEmbed).</summary>
public sealed class PatchEmbed : nn.Module<Tensor, Tensor>
{
    public nn.Module<Tensor, Tensor> proj;
    public readonly int ImageSize, PatchSize;

    public PatchEmbed(int imageSize, int patchSize, int inChans, int dim, bool bias) : base(nameof(PatchEmbed))
    {
        ImageSize = imageSize; PatchSize = patchSize;
        proj = nn.Conv2d(inChans, dim, patchSize, stride: patchSize, bias: bias);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (x.dim() != 4 || x.shape[2] != ImageSize || x.shape[3] != ImageSize)
            throw new ArgumentException($"PatchEmbed expects images [B, C, {ImageSize}, {ImageSize}], got [{string.Join(", ", x.shape)}].");
        return proj.call(x).flatten(2).transpose(1, 2);
    }
}

/// <summary>Multi-head self-attention with one fused qkv projection (timm's Attention; state-dict names qkv, proj).</summary>
public sealed class Attention : nn.Module<Tensor, Tensor>
{
    public nn.Module<Tensor, Tensor> qkv, attn_drop, proj, proj_drop;
    public readonly int NumHeads, HeadDim;
    readonly double scale;

    public Attention(int dim, int numHeads, bool qkvBias, double attnDrop = 0, double projDrop = 0) : base(nameof(Attention))
    {
        NumHeads = numHeads; HeadDim = dim / numHeads; scale = Math.Pow(HeadDim, -0.5);
        qkv = nn.Linear(dim, dim * 3, hasBias: qkvBias);
        attn_drop = nn.Dropout(attnDrop);
        proj = nn.Linear(dim, dim);
        proj_drop = nn.Dropout(projDrop);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        long b = x.shape[0], n = x.shape[1], c = x.shape[2];
        using var qkvOut = qkv.call(x).reshape(b, n, 3, NumHeads, HeadDim).permute(2, 0, 3, 1, 4);
        var (q, k, v) = (qkvOut[0], qkvOut[1], qkvOut[2]);
        using Scalar s = scale; // explicit: an implicit Scalar's finalizer may free it mid-call (Training/MomentumSgd.cs)
        var attn = Checked.MatMul(q.mul(s), k.transpose(-2, -1)).softmax(-1);
        attn = attn_drop.call(attn);
        var y = Checked.MatMul(attn, v).transpose(1, 2).reshape(b, n, c);
        return proj_drop.call(proj.call(y));
    }
}

/// <summary>The transformer MLP: fc1, activation, fc2 (timm's Mlp).</summary>
public sealed class Mlp : nn.Module<Tensor, Tensor>
{
    public nn.Module<Tensor, Tensor> fc1, act, drop1, fc2, drop2;

    public Mlp(int dim, int hidden, string activation, double drop = 0) : base(nameof(Mlp))
    {
        fc1 = nn.Linear(dim, hidden);
        act = activation == "quick_gelu" ? new QuickGELU() : nn.GELU();
        drop1 = nn.Dropout(drop);
        fc2 = nn.Linear(hidden, dim);
        drop2 = nn.Dropout(drop);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => drop2.call(fc2.call(drop1.call(act.call(fc1.call(x)))));
}

/// <summary>x * sigmoid(1.702 x), the GELU approximation OpenAI's CLIP was trained with.</summary>
public sealed class QuickGELU : nn.Module<Tensor, Tensor>
{
    public QuickGELU() : base(nameof(QuickGELU)) { }
    public override Tensor forward(Tensor x) => x * torch.sigmoid(1.702 * x);
}

/// <summary>Stochastic depth: drops a whole residual branch per sample while training (timm's DropPath).</summary>
public sealed class DropPath : nn.Module<Tensor, Tensor>
{
    public readonly double Prob;
    public DropPath(double prob) : base(nameof(DropPath)) { Prob = prob; }

    public override Tensor forward(Tensor x)
    {
        if (Prob == 0 || !training) return x.alias();
        double keep = 1 - Prob;
        var shape = new long[x.dim()];
        shape[0] = x.shape[0];
        for (int i = 1; i < shape.Length; i++) shape[i] = 1;
        var mask = torch.empty(shape, x.dtype, x.device).bernoulli_(keep).div_(keep);
        return x * mask;
    }
}

/// <summary>
/// One transformer block. Its forward is two residual lines; every part is a replaceable slot
/// (typed as a plain module) so PEFT methods can wrap a slot without the block knowing.
/// ls1/ls2 are identity here (timm's LayerScale slots); DiffFit puts its gammas there.
/// </summary>
public sealed class Block : nn.Module<Tensor, Tensor>
{
    public nn.Module<Tensor, Tensor> norm1, attn, ls1, drop_path1, norm2, mlp, ls2, drop_path2;

    public Block(VitConfig c, double dropPath) : base(nameof(Block))
    {
        norm1 = nn.LayerNorm(c.EmbedDim, eps: c.LayerNormEps);
        attn = new Attention(c.EmbedDim, c.NumHeads, c.QkvBias, 0, c.DropRate);
        ls1 = nn.Identity();
        drop_path1 = dropPath > 0 ? new DropPath(dropPath) : nn.Identity();
        norm2 = nn.LayerNorm(c.EmbedDim, eps: c.LayerNormEps);
        mlp = new Mlp(c.EmbedDim, c.MlpHidden, c.Activation, c.DropRate);
        ls2 = nn.Identity();
        drop_path2 = dropPath > 0 ? new DropPath(dropPath) : nn.Identity();
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = x + drop_path1.call(ls1.call(attn.call(norm1.call(x))));
        x = x + drop_path2.call(ls2.call(mlp.call(norm2.call(x))));
        return x;
    }
}
