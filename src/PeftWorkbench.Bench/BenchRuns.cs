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

/// <summary>One method's training loop on random data: AdamW steps as the trainer takes them (its optimizer: flat AdamW,
/// two weight-decay groups), each in its own dispose scope. The PyTorch reference (environment/reference/bench.py)
/// times the same step. Id "NAME:bf16": the trainer's bf16 mode (the model computes in bfloat16, float32 masters and
/// optimizer state, float32 loss), beside the reference's autocast-bf16.</summary>
public sealed class MethodRun : IBenchRun
{
    public string Id { get; }
    public double Best { get; private set; }
    public long TrainableExclHead { get; }
    /// <summary>Frozen tensors that held a gradient after a backward (must be 0: backward never computes them).</summary>
    public int FrozenWithGrad { get; private set; }
    readonly PeftModel model;
    readonly torch.optim.Optimizer opt;
    readonly Training.Bf16Masters? mixed;
    readonly Tensor x, y;
    readonly int batch;

    public MethodRun(VitConfig config, string id, int batch)
    {
        Id = id;
        this.batch = batch;
        var (method, bf16) = BenchMode.Parse(id);
        var vit = new VisionTransformer(config, seed: 0);
        model = PeftApi.Attach(vit, MethodRegistry.Create(method, null, config), seed: 0);
        TrainableExclHead = model.TrainableParameterCountExcludingHead;
        var options = new Training.TrainOptions { Lr = 1e-3, WeightDecay = 1e-4 };
        var (decay, noDecay) = Training.WeightDecayGroups.Split(model, options.WeightDecayRule);
        if (bf16)
        {
            mixed = new Training.Bf16Masters(model);
            var masterOf = mixed.Masters.ToDictionary(m => m.Name, m => m.Master);
            decay = decay.Select(p => (p.Name, masterOf[p.Name])).ToList();
            noDecay = noDecay.Select(p => (p.Name, masterOf[p.Name])).ToList();
        }
        opt = Training.Trainer.MakeOptimizer(options, decay.Select(p => p.Param), noDecay.Select(p => p.Param));
        (x, y) = RandomBatch(config, batch);
        if (bf16) x = x.to(ScalarType.BFloat16);
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
        mixed?.ZeroModelGrads();
        var logits = model.call(x);
        if (logits.dtype != ScalarType.Float32) logits = logits.to(ScalarType.Float32);
        torch.nn.functional.cross_entropy(logits, y).backward();
        mixed?.GradsToMasters();
        opt.step();
        mixed?.MastersToModel();
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
        mixed?.Dispose();
        model.Dispose();
    }
}

/// <summary>Inference on one batch of random images: the plain ViT in eval mode under no_grad, a dispose scope per batch.</summary>
public sealed class InferenceRun : IBenchRun
{
    public string Id { get; }
    public double Best { get; private set; }
    readonly VisionTransformer vit;
    readonly Tensor x, y;
    readonly int batch;

    /// <param name="bf16">The whole model and input in bfloat16 ("inference:bf16").</param>
    public InferenceRun(VitConfig config, int batch, bool bf16 = false)
    {
        this.batch = batch;
        Id = bf16 ? "inference" + BenchMode.Bf16Suffix : "inference";
        vit = new VisionTransformer(config, seed: 0);
        vit.eval();
        (x, y) = MethodRun.RandomBatch(config, batch);
        if (bf16) { vit.to(ScalarType.BFloat16); x = x.to(ScalarType.BFloat16); }
    }

    void Step()
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        vit.call(x);
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

/// <summary>Workload ids: "NAME" (float32) or "NAME:bf16" (bf16 compute; the reference's autocast-bf16).</summary>
public static class BenchMode
{
    public const string Bf16Suffix = ":bf16";

    public static (string Name, bool Bf16) Parse(string id) =>
        id.EndsWith(Bf16Suffix, StringComparison.Ordinal) ? (id[..^Bf16Suffix.Length], true)
        : id.Contains(':') ? throw new ArgumentException($"Workload '{id}': the only mode is '{Bf16Suffix}'.") : (id, false);

    /// <summary>The workloads with their bf16 twins ("inference:bf16" first among those).</summary>
    public static IReadOnlyList<string> WithBf16(IReadOnlyList<string> methods) =>
        methods.Concat(methods.Prepend("inference").Select(m => m + Bf16Suffix)).ToList();
}

/// <summary>`peft bench methods`: every method's training step (<see cref="MethodRun"/>), best of rounds, and its ratio to
/// full fine-tuning (always run first, for the ratio).</summary>
public static class MethodsBench
{
    public static void Run(VitConfig config, IReadOnlyList<string> methods, int batch, int steps, int rounds, Action<string> log)
    {
        if (steps < 1 || batch < 1 || rounds < 1) throw new ArgumentException($"--steps, --rounds and --batch must be at least 1 (got {steps}, {rounds}, {batch}).");
        var ids = methods.Count > 0
            ? methods.Select(c => MethodRegistry.Get(c).Id).Prepend("full").Distinct().ToList()
            : MethodRegistry.All.Select(m => m.Id).OrderBy(id => id == "full" ? 0 : 1).ToList();
        log($"bench methods: {config.Name} (dim {config.EmbedDim}, depth {config.Depth}, {config.ImageSize} px, patch {config.PatchSize}), " +
            $"batch {batch}, {steps} timed steps x {rounds} rounds (best kept), {torch.get_num_threads()} torch threads, AdamW, default options");
        var runs = new List<MethodRun>();
        try
        {
            foreach (var id in ids) runs.Add(new MethodRun(config, id, batch));
            foreach (var run in runs) run.Warmup();
            for (int round = 0; round < rounds; round++)
                foreach (var run in runs) run.Time(steps);
            double full = runs[0].Best;
            log($"  {"method",-15} {"trainable",12} {"img/s",8} {"vs full",8}  frozen tensors with a gradient");
            foreach (var run in runs)
                log($"  {run.Id,-15} {run.TrainableExclHead,12:N0} {run.Best,8:F0} {run.Best / full,7:F2}x  {(run.FrozenWithGrad == 0 ? "none" : run.FrozenWithGrad + " (BUG)")}");
        }
        finally { foreach (var run in runs) run.Dispose(); }
    }
}
