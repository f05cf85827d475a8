using System.Diagnostics;
using PeftWorkbench.Peft;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;
using PeftApi = PeftWorkbench.Peft.Peft;

namespace PeftWorkbench.Bench;

/// <summary>One timed workload of a benchmark: warmed up once, then timed in rounds; the best round counts
/// (other load on the machine only ever slows a round down).</summary>
public interface IBenchRun : IDisposable
{
    string Id { get; }
    /// <summary>Images per second of the best round so far.</summary>
    double Best { get; }
    void Warmup();
    void Time(int steps);
}

/// <summary>One method's training loop on random data: AdamW steps, each in its own dispose scope.
/// The PyTorch reference (environment/reference/bench.py) times exactly this step.</summary>
public sealed class MethodRun : IBenchRun
{
    public string Id { get; }
    public double Best { get; private set; }
    public long TrainableExclHead { get; }
    /// <summary>Frozen tensors that held a gradient after a backward (must be 0: backward never computes them).</summary>
    public int FrozenWithGrad { get; private set; }
    readonly PeftModel model;
    readonly torch.optim.Optimizer opt;
    readonly Tensor x, y;
    readonly int batch;

    public MethodRun(VitConfig config, string id, int batch)
    {
        Id = id;
        this.batch = batch;
        var vit = new VisionTransformer(config, seed: 0);
        model = PeftApi.Attach(vit, MethodRegistry.Create(id, null, config), seed: 0);
        TrainableExclHead = model.TrainableParameterCountExcludingHead;
        opt = torch.optim.AdamW(model.TrainableParameters().Select(p => p.Param), lr: 1e-3, weight_decay: 1e-4);
        (x, y) = RandomBatch(config, batch);
        model.train();
    }

    /// <summary>Random images and labels from a fixed generator (the same on every run).</summary>
    internal static (Tensor X, Tensor Y) RandomBatch(VitConfig config, int batch)
    {
        var gen = new Generator(1);
        return (torch.randn(new long[] { batch, config.InChans, config.ImageSize, config.ImageSize }, generator: gen),
            torch.randint(0, Math.Max(1, config.NumClasses), new long[] { batch }, generator: gen, dtype: ScalarType.Int64));
    }

    void Step()
    {
        using var scope = torch.NewDisposeScope();
        // TorchSharp's zero_grad zeroes in place (PyTorch 1.13's default too; the reference asks for it explicitly).
        opt.zero_grad();
        var loss = torch.nn.functional.cross_entropy(model.forward(x), y);
        loss.backward();
        opt.step();
    }

    public void Warmup()
    {
        Step();
        // After a backward, a frozen tensor must not hold a gradient: backward never computed one.
        FrozenWithGrad = model.NamedParameters().Count(p => !p.Param.requires_grad && p.Param.grad is not null);
        Step();
    }

    public void Time(int steps)
    {
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < steps; i++) Step();
        Best = Math.Max(Best, steps * batch / sw.Elapsed.TotalSeconds);
    }

    public void Dispose()
    {
        opt.Dispose(); x.Dispose(); y.Dispose();
        model.Dispose();
    }
}

/// <summary>Inference on one batch of random images: the plain ViT in eval mode under no_grad, a dispose scope per batch.</summary>
public sealed class InferenceRun : IBenchRun
{
    public string Id => "inference";
    public double Best { get; private set; }
    readonly VisionTransformer vit;
    readonly Tensor x, y;
    readonly int batch;

    public InferenceRun(VitConfig config, int batch)
    {
        this.batch = batch;
        vit = new VisionTransformer(config, seed: 0);
        vit.eval();
        (x, y) = MethodRun.RandomBatch(config, batch);
    }

    void Step()
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        vit.forward(x);
    }

    public void Warmup() { Step(); Step(); }

    public void Time(int steps)
    {
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < steps; i++) Step();
        Best = Math.Max(Best, steps * batch / sw.Elapsed.TotalSeconds);
    }

    public void Dispose() { x.Dispose(); y.Dispose(); vit.Dispose(); }
}
