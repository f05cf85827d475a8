using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Training;

/// <summary>
/// Mixed precision without autocast (TorchSharp has none): the model computes in bfloat16 while the optimizer
/// updates float32 master copies of the trainable parameters; after each step the masters are cast back into the
/// model. Frozen weights are kept in float32 too and restored exactly at the end, so a bf16 run never rounds
/// the pre-trained backbone. Loss and softmax statistics stay in float32 (the trainer casts logits).
/// Module.to(dtype) replaces parameter objects, so everything is tracked by name.
/// </summary>
internal sealed class Bf16Masters : IDisposable
{
    readonly nn.Module model;
    readonly Dictionary<string, Tensor> frozen = new();
    Dictionary<string, Parameter> live;
    public IReadOnlyList<(string Name, Parameter Master)> Masters { get; }

    public Bf16Masters(nn.Module model)
    {
        this.model = model;
        var masters = new List<(string, Parameter)>();
        using (torch.no_grad())
            foreach (var (name, p) in model.named_parameters())
            {
                if (p.dtype != ScalarType.Float32) throw new ArgumentException($"Bf16: parameter '{name}' is {p.dtype}; the model must start in float32.");
                if (p.requires_grad) masters.Add((name, new Parameter(p.DetachedClone(), requires_grad: true)));
                else frozen[name] = p.DetachedClone();
            }
        Masters = masters;
        model.to(ScalarType.BFloat16);
        live = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
    }

    /// <summary>float32 copies of the model's bf16 gradients onto the masters (the optimizer reads these).</summary>
    public void GradsToMasters()
    {
        foreach (var (name, master) in Masters)
            master.grad = live[name].grad is { } g ? g.to(ScalarType.Float32) : null;
    }

    public void MastersToModel()
    {
        using var _ = torch.no_grad();
        foreach (var (name, master) in Masters) live[name].copy_(master);
    }

    public void ZeroModelGrads() => model.zero_grad();

    /// <summary>Back to float32 with the trained masters and the untouched frozen weights.</summary>
    public void Restore()
    {
        model.to(ScalarType.Float32);
        live = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var _ = torch.no_grad();
        foreach (var (name, master) in Masters) live[name].copy_(master);
        foreach (var (name, t) in frozen) live[name].copy_(t);
    }

    public void Dispose()
    {
        foreach (var (_, m) in Masters) m.Dispose();
        foreach (var t in frozen.Values) t.Dispose();
    }
}
