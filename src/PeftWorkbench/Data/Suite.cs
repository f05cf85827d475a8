namespace PeftWorkbench.Data;

/// <summary>What a suite says about one task: group (natural, specialized, structured), source and split sizes.</summary>
public sealed record TaskInfo(string Name, string Group, string Source, int NumClasses,
    int Train800, int Val200, int Train800Val200, int Test, int ManyShotTrain, IReadOnlyList<string> Shifts, string Description);

/// <summary>
/// A set of tasks in the VTAB-1K protocol. <see cref="Mini"/> is the embedded default (32 px tasks built from
/// package data and procedural renderers); <see cref="FromVtabFolder"/> reads the study's processed VTAB-1K folders.
/// Both hand out the same <see cref="Vtab1kTask"/> records.
/// </summary>
public abstract class Suite
{
    /// <summary>The four VTAB-1K splits, and the many-shot training split where a task has one.</summary>
    public static IReadOnlyList<string> SplitNames { get; } = new[] { "train800", "val200", "train800val200", "test" };
    public const string ManyShotSplit = "train-many";
    public static IReadOnlyList<string> Groups { get; } = new[] { "natural", "specialized", "structured" };

    public abstract string Name { get; }
    public abstract IReadOnlyList<TaskInfo> Tasks { get; }

    public TaskInfo Info(string task) =>
        Tasks.FirstOrDefault(t => t.Name == task)
        ?? throw new ArgumentException($"Suite '{Name}' has no task '{task}'. Tasks: {string.Join(", ", Tasks.Select(t => t.Name))}.", nameof(task));

    /// <summary>One split: "train800", "val200", "train800val200", "test", or "train-many" (many-shot tasks only).</summary>
    public abstract ImageSet LoadSplit(string task, string split);

    /// <summary>All four VTAB-1K splits of a task.</summary>
    public virtual Vtab1kTask Load(string task)
    {
        var info = Info(task);
        var parts = new List<ImageSet>();
        try
        {
            foreach (var s in SplitNames) parts.Add(LoadSplit(task, s));
            return new Vtab1kTask(task, info.Group, parts[0], parts[1], parts[2], parts[3]);
        }
        catch { foreach (var p in parts) p.Dispose(); throw; }
    }

    /// <summary>The embedded default suite (built on first use into the data cache).</summary>
    public static MiniSuite Mini { get; } = new();

    /// <summary>Processed VTAB-1K folders (&lt;root&gt;/&lt;task&gt;/{train800,val200,train800val200,test}.txt), resized bicubically to imageSize.</summary>
    public static VtabFolderSuite FromVtabFolder(string root, int imageSize = 224, Normalization? normalization = null) =>
        new(root, imageSize, normalization ?? Normalization.Half);
}
