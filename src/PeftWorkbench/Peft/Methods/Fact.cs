using PeftWorkbench.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Peft;

/// <summary>
/// FacT's factors shared by every block: U (d -> k) and V (k -> d); for FacT-TK also the core C (k x k x k)
/// and P (k x blocks * sites), whose product gives each block's per-site k x k matrices. Registered once
/// on the PeftModel as "fact" (keys fact.FacTu.weight, ...); the per-site wrappers hold references.
/// </summary>
public sealed class FactFactors : nn.Module
{
    public Linear FacTu, FacTv;
    public Parameter? FacTp, FacTc;

    public FactFactors(int dim, int k, int tkColumns) : base(nameof(FactFactors))
    {
        FacTu = nn.Linear(dim, k, hasBias: false); // PyTorch's default Linear init, as the study's code keeps
        FacTv = nn.Linear(k, dim, hasBias: false);
        using (torch.no_grad()) nn.init.zeros_(FacTv.weight);
        if (tkColumns > 0)
        {
            FacTp = nn.Parameter(torch.empty(k, tkColumns));
            FacTc = nn.Parameter(torch.empty(k, k, k));
            using (torch.no_grad()) { nn.init.xavier_uniform_(FacTc); nn.init.xavier_uniform_(FacTp); }
        }
        RegisterComponents();
    }

    /// <summary>FacT-TK's k x k x n core for columns [start, start + n) of P: C @ P[:, start..start+n].</summary>
    public Tensor Cores(long start, long n) => Checked.MatMul(FacTc!, FacTp![.., (int)start..(int)(start + n)], "FacT cores");
}

/// <summary>
/// FacT-TT's and FacT-TK's options: the same three (the study's fact_dim, fact_scaler, fact_dropout), the same
/// checks and the same attach, apart from where the cores come from.
/// </summary>
public abstract record FactOptions : PeftOptions
{
    /// <summary>Factor rank k (fact_dim; the study's default 8).</summary>
    public int Dim { get; init; } = 8;
    /// <summary>Scale s (fact_scaler; the study's default 1).</summary>
    public double Scale { get; init; } = 1;
    public double Dropout { get; init; } = 0.1;

    /// <summary>FacT-TK (cores from the shared C @ P) rather than FacT-TT (cores per block).</summary>
    private protected abstract bool Tk { get; }

    /// <summary>The options both variants share; only the study's grid of k differs.</summary>
    private protected static OptionSpec[] Specs(object[] dimGrid) => new OptionSpec[]
    {
        new("fact_dim", nameof(Dim), "factor rank k", dimGrid),
        new("fact_scaler", nameof(Scale), "scale s", new object[] { 0.01, 0.1, 1, 10, 100 }),
        new("fact_dropout", nameof(Dropout), "dropout after the core"),
    };

    public override void Validate(VitConfig vit)
    {
        CheckRange(nameof(Dim), Dim, 1, vit.EmbedDim, "1 to the ViT's embedding dimension");
        CheckPositive(nameof(Scale), Scale);
        if (vit.MlpHidden % vit.EmbedDim != 0)
            throw new ArgumentException($"{GetType().Name}: FacT needs an MLP hidden size that is a whole multiple of the embedding dimension; ViT '{vit.Name}' has {vit.MlpHidden} / {vit.EmbedDim}.");
        CheckProbability(nameof(Dropout), Dropout);
    }

    internal override void Attach(AttachContext ctx) => Fact.Attach(ctx, Dim, Scale, Dropout, Tk);
}

/// <summary>Which linear layer of a block a FacT wrapper updates.</summary>
public enum FactSite { Qkv, Proj, Fc1, Fc2 }

/// <summary>Shared attach code of FacT-TT and FacT-TK.</summary>
public static class Fact
{
    /// <summary>The MLP's hidden / embedding ratio m (4 in ViT-B); FacT's MLP cores are k x m k.</summary>
    public static int MlpRatio(VitConfig c) => c.MlpHidden / c.EmbedDim;

    /// <summary>FacT-TK's sites per block: q, k, v, proj, then m for fc1 and m for fc2 (12 in ViT-B).</summary>
    public static int ColumnsPerBlock(VitConfig c) => 4 + 2 * MlpRatio(c);

    internal static void Attach(AttachContext ctx, int k, double scale, double dropout, bool tk)
    {
        var factors = ctx.Share("fact", new FactFactors(ctx.Config.EmbedDim, k, tk ? ColumnsPerBlock(ctx.Config) * ctx.Depth : 0));
        for (int i = 0; i < ctx.Depth; i++)
        {
            var attn = ctx.Attention(i);
            var mlp = ctx.Mlp(i);
            int block = i;
            ctx.Wrap(attn, nameof(attn.qkv), l => new FactLinear(l, factors, FactSite.Qkv, block, ctx.Config, scale, dropout, tk, ctx.State));
            ctx.Wrap(attn, nameof(attn.proj), l => new FactLinear(l, factors, FactSite.Proj, block, ctx.Config, scale, dropout, tk, ctx.State));
            ctx.Wrap(mlp, nameof(mlp.fc1), l => new FactLinear(l, factors, FactSite.Fc1, block, ctx.Config, scale, dropout, tk, ctx.State));
            ctx.Wrap(mlp, nameof(mlp.fc2), l => new FactLinear(l, factors, FactSite.Fc2, block, ctx.Config, scale, dropout, tk, ctx.State));
        }
    }
}

/// <summary>
/// A linear layer plus FacT's update V core U, times s. FacT-TT owns its cores (k x k for q, k, v and proj;
/// k x m k for fc1 and fc2, the MLP's m output or input chunks sharing U and V); FacT-TK reads them from
/// the shared C @ P. Dropout sits after the core, as in the study's code.
/// </summary>
public sealed class FactLinear : LinearSlot
{
    public Linear? q_FacTs, k_FacTs, v_FacTs, FacTs;
    public nn.Module<Tensor, Tensor> dropout;
    readonly Ref<FactFactors> f;
    readonly FactSite site;
    readonly bool tk;
    readonly int k, m, column;
    readonly double scale;

    public FactLinear(nn.Module<Tensor, Tensor> slot, FactFactors factors, FactSite site, int block, VitConfig c,
        double scale, double dropout, bool tk, PeftState state) : base(nameof(FactLinear), slot, state)
    {
        f = new(factors);
        this.site = site; this.tk = tk; this.scale = scale;
        k = (int)factors.FacTu.weight.shape[0];
        m = Fact.MlpRatio(c);
        int start = block * Fact.ColumnsPerBlock(c);
        column = site switch { FactSite.Qkv => start, FactSite.Proj => start + 3, _ => start + 4 };
        this.dropout = nn.Dropout(dropout);
        if (!tk)
        {
            // PyTorch's default Linear init (Kaiming-uniform), as the study's code leaves the TT cores.
            switch (site)
            {
                case FactSite.Qkv:
                    q_FacTs = nn.Linear(k, k, hasBias: false);
                    k_FacTs = nn.Linear(k, k, hasBias: false);
                    v_FacTs = nn.Linear(k, k, hasBias: false);
                    break;
                case FactSite.Proj: FacTs = nn.Linear(k, k, hasBias: false); break;
                case FactSite.Fc1: FacTs = nn.Linear(k, m * k, hasBias: false); break;
                case FactSite.Fc2: FacTs = nn.Linear(m * k, k, hasBias: false); break;
            }
        }
        RegisterComponents();
    }

    protected override Tensor ForwardTuned(Tensor x, double strength) => Base(x) + Delta(x).Times(scale * strength);

    Tensor U(Tensor x) => f.Value.FacTu.call(x);
    Tensor V(Tensor h) => f.Value.FacTv.call(h);
    Tensor Dp(Tensor h) => dropout.call(h);

    Tensor Delta(Tensor x)
    {
        var lead = x.shape[..^1];
        long d = f.Value.FacTv.weight.shape[0];
        switch (site)
        {
            case FactSite.Qkv:
            {
                var u = U(x);
                if (tk)
                {
                    var c = f.Value.Cores(column, 3);
                    return torch.cat(new[] { V(Dp(Checked.MatMul(u, c[.., .., 0]))), V(Dp(Checked.MatMul(u, c[.., .., 1]))), V(Dp(Checked.MatMul(u, c[.., .., 2]))) }, -1);
                }
                return torch.cat(new[] { V(Dp(q_FacTs!.call(u))), V(Dp(k_FacTs!.call(u))), V(Dp(v_FacTs!.call(u))) }, -1);
            }
            case FactSite.Proj:
            {
                var u = U(x);
                return V(Dp(tk ? Checked.MatMul(u, f.Value.Cores(column, 1)[.., .., 0]) : FacTs!.call(u)));
            }
            case FactSite.Fc1:
            {
                // One k x m k core; its output splits into m chunks of k, each mapped by the shared V.
                var u = U(x);
                var h = Dp(tk ? Checked.MatMul(u, f.Value.Cores(column, m).reshape(k, m * k)) : FacTs!.call(u));
                return V(h.reshape(lead.Concat(new long[] { m, k }).ToArray())).reshape(lead.Append(m * d).ToArray());
            }
            default:
            {
                // The MLP's hidden input splits into m chunks of d, each mapped by the shared U.
                var u = U(x.reshape(lead.Concat(new long[] { m, d }).ToArray())).reshape(lead.Append(m * k).ToArray());
                return V(Dp(tk ? Checked.MatMul(u, f.Value.Cores(column + m, m).reshape(k, m * k).t()) : FacTs!.call(u)));
            }
        }
    }
}
