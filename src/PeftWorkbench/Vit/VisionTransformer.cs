using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Vit;

/// <summary>
/// A Vision Transformer with timm's state-dict names (cls_token, pos_embed, patch_embed.proj,
/// blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}, norm, head). It reads top to bottom:
/// patch embed -> class token + positions -> blocks -> norm -> class-token pooling -> head.
/// It knows nothing of PEFT: methods attach by replacing its slots (see Peft/).
/// </summary>
public sealed partial class VisionTransformer : nn.Module<Tensor, Tensor>, INoWeightDecay
{
    public nn.Module<Tensor, Tensor> patch_embed;
    public Parameter cls_token, pos_embed;
    public nn.Module<Tensor, Tensor> pos_drop, norm_pre;
    public ModuleList<nn.Module<Tensor, Tensor>> blocks;
    public nn.Module<Tensor, Tensor> norm, head;

    public VitConfig Config { get; private set; }

    /// <summary>Builds a randomly initialised ViT; with a seed the weights are the same on every run.</summary>
    public VisionTransformer(VitConfig config, long? seed = null) : base(nameof(VisionTransformer))
    {
        config.Validate();
        Config = config;
        if (seed is long s) torch.manual_seed(s);
        int d = config.EmbedDim;
        patch_embed = new PatchEmbed(config.ImageSize, config.PatchSize, config.InChans, d, config.PatchBias);
        cls_token = nn.Parameter(torch.zeros(1, 1, d));
        pos_embed = nn.Parameter(torch.zeros(1, config.NumPatches + 1, d));
        pos_drop = nn.Dropout(config.DropRate);
        norm_pre = config.PreNorm ? nn.LayerNorm(d, eps: config.LayerNormEps) : nn.Identity();
        // Stochastic depth grows linearly with depth, as in timm.
        blocks = new ModuleList<nn.Module<Tensor, Tensor>>();
        for (int i = 0; i < config.Depth; i++)
            blocks.Add(new Block(config, config.Depth > 1 ? config.DropPathRate * i / (config.Depth - 1) : config.DropPathRate));
        norm = nn.LayerNorm(d, eps: config.LayerNormEps);
        head = config.NumClasses > 0 ? nn.Linear(d, config.NumClasses) : nn.Identity();
        RegisterComponents();
        // A private generator for the seeded case: other threads drawing from the global one cannot change the weights.
        InitWeights(seed is long g ? new Generator(unchecked((ulong)g)) : null);
    }

    /// <summary>timm's init: truncated normal (std 0.02) for linear weights and positions, zero biases, unit norms.</summary>
    void InitWeights(Generator? gen)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope(); // temporaries of the fills go at once, not at some GC
        TruncNormal.Fill_(pos_embed, std: 0.02, generator: gen);
        cls_token.normal_(0, 1e-6, gen);
        foreach (var (name, m) in named_modules())
        {
            switch (m)
            {
                case Linear lin:
                    TruncNormal.Fill_(lin.weight, std: 0.02, generator: gen);
                    if (lin.bias is not null) nn.init.zeros_(lin.bias);
                    break;
                case LayerNorm ln:
                    nn.init.ones_(ln.weight); nn.init.zeros_(ln.bias);
                    break;
                case Conv2d conv:
                    // lecun-normal-like: truncated normal scaled by fan-in, as timm does for the patch projection.
                    long fanIn = conv.weight!.shape[1] * conv.weight.shape[2] * conv.weight.shape[3];
                    TruncNormal.Fill_(conv.weight, std: Math.Sqrt(1.0 / fanIn), generator: gen);
                    if (conv.bias is not null) nn.init.zeros_(conv.bias);
                    break;
            }
        }
    }

    public int NumFeatures => Config.EmbedDim;

    /// <summary>Token sequence after the final norm: [B, 1 + N, D] (plus any tokens a method inserted).</summary>
    public Tensor ForwardFeatures(Tensor x)
    {
        // The whole pass in a scope: a chained intermediate nothing references (cat's result under + pos_embed)
        // could otherwise be finalized during the native call that reads it (Training/Temporaries.cs).
        using var outer = torch.NewDisposeScope();
        var input = x;
        x = patch_embed.call(x);
        x = torch.cat(new[] { cls_token.expand(x.shape[0], -1, -1), x }, 1) + pos_embed;
        x = norm_pre.call(pos_drop.call(x));
        foreach (var block in blocks)
        {
            // One scope per block: its temporaries go as soon as it returns (autograd keeps what backward
            // needs), so peak memory holds one block's scratch, not every block's, as in PyTorch.
            using var scope = torch.NewDisposeScope();
            var y = block.call(x);
            x = ReferenceEquals(y, x) ? y : y.MoveToOuterDisposeScope();
        }
        var features = norm.call(x);
        return ReferenceEquals(features, input) ? features : features.MoveToOuterDisposeScope();
    }

    /// <summary>Class-token pooling, then the head (or the pooled features when preLogits).</summary>
    public Tensor ForwardHead(Tensor features, bool preLogits = false)
    {
        using var scope = torch.NewDisposeScope();
        var pooled = features[.., 0];
        var output = preLogits ? pooled : head.call(pooled);
        return ReferenceEquals(output, features) ? output : output.MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor x) => ForwardHead(ForwardFeatures(x));

    /// <summary>A fresh head for <paramref name="numClasses"/> classes (0: identity, features out).</summary>
    public void ResetHead(int numClasses, long? seed = null)
    {
        if (numClasses < 0) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "class count must be >= 0");
        if (seed is long s) torch.manual_seed(s);
        var device = cls_token.device;
        nn.Module<Tensor, Tensor> fresh;
        if (numClasses > 0)
        {
            var lin = nn.Linear(Config.EmbedDim, numClasses);
            using (torch.no_grad()) { TruncNormal.Fill_(lin.weight, std: 0.02); nn.init.zeros_(lin.bias!); }
            fresh = lin.to(device);
        }
        else fresh = nn.Identity();
        Slots.Replace(this, nameof(head), fresh).Dispose();
        Config = Config with { NumClasses = numClasses };
    }

    /// <summary>
    /// Parameters exempt from weight decay: positions, class token, every 1-D tensor (norms, biases),
    /// as timm's no_weight_decay plus its "no decay on ndim &lt;= 1" rule. The trainer's decay groups read it
    /// (<see cref="Training.WeightDecayGroups"/>).
    /// </summary>
    public ISet<string> NoWeightDecay() =>
        named_parameters().Where(p => p.parameter.dim() <= 1 || p.name is "pos_embed" or "cls_token")
            .Select(p => p.name).ToHashSet();

    IEnumerable<string> INoWeightDecay.NoWeightDecay() => NoWeightDecay();

    /// <summary>Parameter count per top-level module (blocks summed), and the total.</summary>
    public IReadOnlyList<(string Module, long Params)> ParameterSummary()
    {
        var rows = new List<(string, long)>();
        foreach (var (name, p) in named_parameters())
        {
            string key = name.StartsWith("blocks.") ? "blocks" : name.Split('.')[0];
            int i = rows.FindIndex(r => r.Item1 == key);
            if (i < 0) rows.Add((key, p.numel())); else rows[i] = (key, rows[i].Item2 + p.numel());
        }
        return rows;
    }

    public long ParameterCount => parameters().Sum(p => p.numel());
}
