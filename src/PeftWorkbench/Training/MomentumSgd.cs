using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Training;

/// <summary>
/// SGD with momentum and L2 weight decay, PyTorch's update (dampening 0, no Nesterov): d = g + wd p; b = m b + d
/// (b = d at the first step); p -= lr b. TorchSharp's own SGD passes its numbers to libtorch as implicitly converted
/// Scalars that only the finalizer frees, and a finalizer that runs during the native call makes libtorch throw
/// "Unknown scalar type" (seen once in `ProtocolTests` under two busy loops; TorchSharp PRs #1434/#1496 are open). Here
/// every Scalar is explicit and disposed after the op that reads it.
/// </summary>
public sealed class MomentumSgd : OptimizerHelper
{
    readonly Dictionary<IntPtr, Tensor> buffers = new();

    public MomentumSgd(IEnumerable<SGD.ParamGroup> groups, double lr, double momentum = 0.9)
    {
        _parameter_groups = new List<ParamGroup>();
        foreach (var g in groups)
        {
            g.Options ??= new SGD.Options();
            var o = (SGD.Options)g.Options;
            o.LearningRate ??= lr; o.InitialLearningRate = o.LearningRate.Value;
            o.momentum ??= momentum; o.weight_decay ??= 0;
            _parameter_groups.Add(g);
        }
    }

    public override Tensor step(Func<Tensor>? closure = null)
    {
        Tensor? loss = null;
        if (closure is not null) using (torch.enable_grad()) loss = closure();
        using (torch.no_grad())
        using (torch.NewDisposeScope())
            foreach (var g in _parameter_groups)
            {
                var o = (SGD.Options)g.Options;
                using var wd = o.weight_decay!.Value.ToScalar();
                using var m = o.momentum!.Value.ToScalar();
                using var minusLr = (-o.LearningRate!.Value).ToScalar();
                using var one = 1.0.ToScalar();
                foreach (var p in g.Parameters)
                {
                    if (p.grad is not { } grad) continue;
                    var d = o.weight_decay.Value != 0 ? grad.add(p, wd) : grad;
                    if (buffers.TryGetValue(p.Handle, out var b)) b.mul_(m).add_(d, one);
                    else buffers[p.Handle] = b = d.DetachedClone().DetachFromDisposeScope();
                    p.add_(b, minusLr);
                }
            }
        return loss!;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) { foreach (var b in buffers.Values) b.Dispose(); buffers.Clear(); }
        base.Dispose(disposing);
    }
}
