using PeftWorkbench.Data;
using static TorchSharp.torch;

namespace PeftWorkbench.Tuning;

/// <summary>
/// VTAB-1K at a smaller training-set size (notebook 07's regime): tune trials train on a seeded subset of N train800
/// images and are scored on val200 as today; the final trains on that subset plus val200, as the study's final trains
/// on train800val200 (its train and val lists together), and is scored on the whole test split.
/// The subset is the first N of one fixed permutation of train800 (seed <see cref="Seed"/>, not the trial's): it
/// depends on the task and N only, so every method, backbone and training seed sees the same images, and the sizes
/// are nested (the 50 images are among the 100, the 100 among the 200 ...).
/// </summary>
public static class TrainSubset
{
    /// <summary>The size train800 names: a size of 800 is the whole split, with today's keys (no size in them).</summary>
    public const int Whole = 800;
    /// <summary>The permutation's seed: fixed, so that the subsets do not move with the training seed.</summary>
    public const ulong Seed = 20_800;

    /// <summary>null and 800 (the whole train800) give null; a size below 1 is refused.</summary>
    public static int? Normalize(int? n) => n switch
    {
        null or Whole => null,
        < 1 => throw new ArgumentException($"A training-set size must be at least 1 image, got {n}.", nameof(n)),
        _ => n,
    };

    /// <summary>train800's image count of <paramref name="task"/> where the suite knows it without loading images
    /// (mini: its table; toy: classes x images per class; vtab:ROOT: lines of train800.txt); null otherwise
    /// (<see cref="Apply"/> checks then, still before any training).</summary>
    public static int? SplitCount(string suite, string task)
    {
        switch (suite)
        {
            case "mini": return Suite.Mini.Info(task).Train800;
            case "toy": return ToySuite.Classes(task) * ToySuite.PerClass;
            case string s when s.StartsWith("vtab:", StringComparison.Ordinal):
                var list = Path.Combine(s[5..], task, "train800.txt");
                return File.Exists(list) ? File.ReadLines(list).Count(l => l.Trim().Length > 0) : null;
            default: return null;
        }
    }

    /// <summary>Refuses a size larger than the task's training split, naming the task, the size and the split's count.</summary>
    public static void Check(string task, int n, long splitCount)
    {
        if (n > splitCount)
            throw new ArgumentException($"Training-set size {n} is larger than task '{task}''s training split (train800 holds {splitCount} images): " +
                $"choose a size from 1 to {splitCount}.", nameof(n));
    }

    /// <summary>The indices of the subset of <paramref name="n"/> of <paramref name="count"/> images: the first n of the fixed permutation.</summary>
    public static long[] Indices(long count, int n)
    {
        using var gen = new Generator(Seed);
        using var perm = randperm(count, generator: gen);
        return perm.data<long>().Take(n).ToArray();
    }

    /// <summary><paramref name="task"/> with train800 cut to its seeded subset of <paramref name="n"/> and train800val200
    /// rebuilt as that subset plus val200 (val200 and test unchanged). Takes ownership of <paramref name="task"/>: the
    /// splits it replaces are disposed (also when the size is refused).</summary>
    public static Vtab1kTask Apply(Vtab1kTask task, int n)
    {
        try { Check(task.Name, n, task.Train800.Count); }
        catch { task.Dispose(); throw; }
        if (n == task.Train800.Count) return task;
        var train = task.Train800.Subset(Indices(task.Train800.Count, n), $"{task.Train800.Name}-{n}");
        var both = new ImageSet(cat(new[] { train.Images, task.Val200.Images }), cat(new[] { train.Labels, task.Val200.Labels }),
            task.Val200.NumClasses, $"{task.Train800Val200.Name}-{n}+val");
        task.Train800.Dispose();
        task.Train800Val200.Dispose();
        return task with { Train800 = train, Train800Val200 = both };
    }
}
