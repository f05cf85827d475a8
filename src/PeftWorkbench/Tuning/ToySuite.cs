using PeftWorkbench.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Tuning;

/// <summary>
/// Tiny procedural VTAB-1K-shaped tasks for exercising the protocol, stores and sweeps in seconds (tests, CLI
/// smoke runs): "toy-&lt;k&gt;" has k classes (2..10), each a fixed random colour pattern plus noise; split sizes
/// scale with <c>perClass</c>. Not a benchmark: the real suite lives in Data/.
/// </summary>
public static class ToySuite
{
    /// <summary>A toy task with exactly the VTAB-1K split sizes (800 / 200 / 1000 / <paramref name="test"/>), for timing the protocol.</summary>
    public static Vtab1kTask Vtab1kSized(int classes, int imageSize, int test = 2000, int inChans = 3)
    {
        using var big = Load($"toy-{classes}", imageSize, inChans, perClass: (test + classes - 1) / classes);
        long[] First(int n) => Enumerable.Range(0, n).Select(i => (long)i).ToArray();
        return new Vtab1kTask($"toy-{classes}", "toy", big.Train800.Subset(First(800)), big.Val200.Subset(First(200)),
            big.Train800Val200.Subset(First(1000)), big.Test.Subset(First(test)));
    }

    /// <summary>The class count a toy task's name gives ("toy-3": 3); throws for a name that is not a toy task.</summary>
    public static int Classes(string name) =>
        name.StartsWith("toy-", StringComparison.Ordinal) && int.TryParse(name[4..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int k) && k is >= 2 and <= 10
            ? k : throw new ArgumentException($"Toy task '{name}': expected toy-<classes> with 2..10 classes, e.g. toy-3.");

    /// <summary>Images per class of a toy task's train800 as the trial environment loads it.</summary>
    public const int PerClass = 8;

    public static Vtab1kTask Load(string name, int imageSize, int inChans = 3, int perClass = PerClass)
    {
        int k = Classes(name);
        var protos = torch.randn(new long[] { k, inChans, imageSize, imageSize }, generator: new Generator((ulong)(100 + k)));
        ImageSet Split(string split, int count, ulong seed)
        {
            using var scope = torch.NewDisposeScope();
            var labels = torch.arange(count, ScalarType.Int64) % k;
            var noise = torch.randn(new long[] { count, inChans, imageSize, imageSize }, generator: new Generator(seed));
            var images = protos.index_select(0, labels) + 0.8f * noise;
            return new ImageSet(images.MoveToOuterDisposeScope(), labels.MoveToOuterDisposeScope(), k, $"{name}/{split}");
        }
        try
        {
            int train = perClass * k, val = Math.Max(k, perClass * k / 4);
            return new Vtab1kTask(name, "toy", Split("train800", train, 1), Split("val200", val, 2),
                Split("train800val200", train + val, 3), Split("test", perClass * k, 4));
        }
        finally { protos.Dispose(); }
    }
}
