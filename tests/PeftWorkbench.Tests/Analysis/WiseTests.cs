using PeftWorkbench.Analysis;
using PeftWorkbench.Data;
using PeftWorkbench.Tests.Training;
using PeftWorkbench.Training;
using TorchSharp;
using static TorchSharp.torch;
using PeftApi = PeftWorkbench.Peft.Peft;

namespace PeftWorkbench.Tests.Analysis;

public class WiseTests
{
    static readonly TrainOptions Short = new() { Epochs = 2, WarmupEpochs = 0, BatchSize = 16, Lr = 1e-2, WeightDecay = 1e-4 };

    static bool Same(EvalResult a, EvalResult b) => a.Logits.shape.SequenceEqual(b.Logits.shape) && a.Logits.eq(b.Logits).all().item<bool>();

    [Theory]
    [InlineData("full")]
    [InlineData("lora")]
    public void Alpha_0_and_1_are_the_two_end_models_exactly(string method)
    {
        using var train = TinyData.Set(48, seed: 1);
        using var eval = TinyData.Set(20, seed: 2);
        using var reference = TinyData.Vit(seed: 5);           // the start model, untouched
        var vit = TinyData.Vit(seed: 5);
        using var head = HeadSnapshot.Capture(vit);
        using var model = PeftApi.Attach(vit, method, seed: 5);
        Trainer.Fit(model, train, null, Short);
        using var tuned = Trainer.Evaluate(model, eval);
        using var start = Trainer.Evaluate(reference, eval);
        using var at0 = Wise.Evaluate(model, head, 0, eval);
        using var at1 = Wise.Evaluate(model, head, 1, eval);
        using var atHalf = Wise.Evaluate(model, head, 0.5, eval);
        Assert.True(Same(at0, start), "alpha 0 must be the start model exactly");
        Assert.True(Same(at1, tuned), "alpha 1 must be the fine-tuned model exactly");
        Assert.False(Same(atHalf, tuned));
        Assert.False(Same(start, tuned)); // training moved the model
        // Strength and head are restored after each alpha.
        using var again = Trainer.Evaluate(model, eval);
        Assert.True(Same(again, tuned));
        var curve = Wise.Curve(model, head, eval, new Dictionary<string, ImageSet> { ["same"] = eval }, new[] { 0.0, 1.0 });
        Assert.Equal(start.Top1, curve.Points[0].Target);
        Assert.Equal(tuned.Top1, curve.Points[1].MeanShift);
    }

    [Fact]
    public void Robustness_fine_tuning_at_alpha_0_is_the_zero_shot_model()
    {
        // 32 px images of 10 classes stand in for MNIST: what matters is the start (the shipped ViT's digit head).
        using var scope = NewDisposeScope();
        var gen = new Generator(3);
        var images = torch.rand(new long[] { 32, 3, 32, 32 }, generator: gen) * 2 - 1;
        var labels = torch.arange(32, ScalarType.Int64) % 10;
        using var train = new ImageSet(images, labels, 10, "train");
        using var run = Robustness.FineTune("lora", Short with { Epochs = 1 }, train: train);
        using var zeroShot = Robustness.ZeroShotModel();
        using var expected = Trainer.Evaluate(zeroShot, train);
        using var at0 = Wise.Evaluate(run.Model, run.ZeroShotHead, 0, train);
        using var at1 = Wise.Evaluate(run.Model, run.ZeroShotHead, 1, train);
        Assert.True(Same(at0, expected));
        Assert.False(Same(at1, expected));
    }
}
