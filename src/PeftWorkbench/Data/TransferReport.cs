using PeftWorkbench.Training;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Data;

/// <summary>`peft data probe`: does pre-training transfer? Linear probes (train800val200 -> test) on the shipped mini
/// checkpoint and on a randomly initialised ViT of its shape, per mini task of the chosen groups, as a Markdown table.</summary>
public static class TransferReport
{
    /// <summary>The logistic probe's recipe: long enough (100 epochs on cached features) that the head converges on every
    /// mini task, so the table compares features, not how far a short probe got.</summary>
    public static TrainOptions LogisticRecipe { get; } = new() { Epochs = 100, WarmupEpochs = 10, BatchSize = 64, Lr = 1e-2, WeightDecay = 1e-4, Seed = 42 };

    /// <summary>The table's lines, one row per task as it finishes.</summary>
    public static IEnumerable<string> Markdown(IReadOnlyCollection<string> groups)
    {
        yield return "| task | group | pre-trained: logistic | random init: logistic | pre-trained: ridge | random init: ridge |";
        yield return "|---|---|---|---|---|---|";
        foreach (var t in Suite.Mini.Tasks.Where(t => groups.Contains(t.Group)))
        {
            using var train = Suite.Mini.LoadSplit(t.Name, "train800val200");
            using var test = Suite.Mini.LoadSplit(t.Name, "test");
            using var pre = VisionTransformer.Pretrained("mini");
            using var rand = new VisionTransformer(pre.Config, seed: 0);
            double rp = TransferProbe.Ridge(pre, train, test), rr = TransferProbe.Ridge(rand, train, test);
            double lp = TransferProbe.Logistic(pre, train, test, LogisticRecipe), lr = TransferProbe.Logistic(rand, train, test, LogisticRecipe);
            yield return $"| {t.Name} | {t.Group} | {lp:F1} | {lr:F1} | {rp:F1} | {rr:F1} |";
        }
    }
}
