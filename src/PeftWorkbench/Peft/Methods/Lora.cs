using PeftWorkbench.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Peft;

/// <summary>
/// LoRA as the study builds it: on the fused qkv linear, one shared A (d -> r) and one B (r -> 3d), so q, k
/// and v all get low-rank updates: qkv(x) + B(A(dropout(x))) * scaling. The study uses no alpha / r
/// scaling (scaling 1); set <see cref="Alpha"/> for HF PEFT's alpha / r. Merges as W' = W + s scaling B A.
/// </summary>
public sealed record LoraOptions : PeftOptions
{
    /// <summary>Rank r (lora_bottleneck). The study's grid is {1, 8, 16, 32}; 8 here (its code's default 0 means "off").</summary>
    public int Rank { get; init; } = 8;
    /// <summary>When set, the update is scaled by Alpha / Rank (HF PEFT); null (the study) scales by 1.</summary>
    public double? Alpha { get; init; }
    public double Dropout { get; init; } = 0.1;

    public static PeftMethod Info { get; } = new(
        Id: "lora", Name: "LoRA", OptionsType: typeof(LoraOptions),
        Where: "on the fused qkv linear of every block: one A (d -> r), one B (r -> 3d)",
        Init: "A Kaiming-uniform, B zero; dropout 0.1 on the input; no alpha / r scaling",
        Options: new OptionSpec[]
        {
            new("lora_bottleneck", nameof(Rank), "rank r", new object[] { 1, 8, 16, 32 }),
            new("lora_alpha", nameof(Alpha), "alpha (update scaled by alpha / r); null = the study's scaling 1"),
            new("lora_dropout", nameof(Dropout), "dropout on the LoRA input"),
        },
        Mergeable: true, IdentityAtInit: true);

    public override PeftMethod Describe() => Info;

    public override void Validate(VitConfig vit)
    {
        CheckRange(nameof(Rank), Rank, 1, vit.EmbedDim, "1 to the ViT's embedding dimension");
        if (Alpha is double a) CheckPositive(nameof(Alpha), a);
        CheckProbability(nameof(Dropout), Dropout);
    }

    public double Scaling => Alpha is double a ? a / Rank : 1.0;

    internal override void Attach(AttachContext ctx)
    {
        for (int i = 0; i < ctx.Depth; i++)
        {
            var attn = ctx.Attention(i);
            ctx.Wrap(attn, nameof(attn.qkv), qkv => new LoraLinear(qkv, this, ctx.State));
        }
    }
}

/// <summary>A linear layer plus a low-rank update: linear(x) + B(A(dropout(x))) * scaling * strength.</summary>
public sealed class LoraLinear : LinearSlot
{
    public Linear lora_A, lora_B;
    public nn.Module<Tensor, Tensor> lora_dropout;
    readonly double scaling;

    public LoraLinear(nn.Module<Tensor, Tensor> slot, LoraOptions o, PeftState state) : base(nameof(LoraLinear), slot, state)
    {
        scaling = o.Scaling;
        lora_A = nn.Linear(InFeatures, o.Rank, hasBias: false);
        lora_B = nn.Linear(o.Rank, OutFeatures, hasBias: false);
        lora_dropout = nn.Dropout(o.Dropout);
        using (torch.no_grad())
        {
            nn.init.kaiming_uniform_(lora_A.weight, a: Math.Sqrt(5));
            nn.init.zeros_(lora_B.weight);
        }
        RegisterComponents();
    }

    protected override Tensor ForwardTuned(Tensor x, double strength)
    {
        var delta = lora_B.call(lora_A.call(lora_dropout.call(x)));
        double k = scaling * strength;
        return Base(x) + (k == 1 ? delta : delta.Times(k));
    }

    protected override (Tensor Weight, Tensor Bias) MergedWeights(double strength)
    {
        var w = weight + Checked.MatMul(lora_B.weight, lora_A.weight, "LoRA merge").Times(scaling * strength);
        return (w, bias is null ? torch.zeros(OutFeatures, dtype: weight.dtype, device: weight.device) : bias.clone());
    }
}
