namespace PeftWorkbench.Tuning;

/// <summary>One run of a capacity sweep: the method at one capacity (its width: LoRA rank, adapter bottleneck,
/// FacT rank), or at its only setting when it has no width (linear probe, full fine-tuning, BitFit ...).</summary>
public sealed record CapacityRun(StudyRun Run, int? Capacity) : IDisposable
{
    public void Dispose() => Run.Dispose();
}

/// <summary>
/// The study's many-shot experiment (other_experiments_results.csv): the same methods at several capacities beside
/// full fine-tuning and the linear probe. Each (task, method, capacity) goes through <see cref="Study.Run"/> with the
/// capacity as the method's own hyperparameter, so finished trials are read from the store and only missing ones train.
/// </summary>
public static class CapacitySweep
{
    /// <summary>The width key of each method the study swept on its many-shot datasets (it names those runs method_N).</summary>
    public static IReadOnlyDictionary<string, string> Keys { get; } = new Dictionary<string, string>
    {
        ["lora"] = "lora_bottleneck", ["rand_h_adapter"] = "adapter_bottleneck", ["fact_tk"] = "fact_dim",
    };

    /// <summary>The width key of <paramref name="method"/> (an id or alias), or null when the study swept no width for it.</summary>
    public static string? KeyOf(string method) => Keys.TryGetValue(Peft.MethodRegistry.Get(method).Id, out var k) ? k : null;

    /// <summary>
    /// Every task x method (x capacity, for a method with a width key), tasks outer, in that order. Every method and
    /// capacity is checked before any training; a method without a width runs once at its defaults. <paramref name="checkpoint"/>:
    /// as <see cref="Study.Run"/>'s (null: the suite's default backbone).
    /// </summary>
    public static IReadOnlyList<CapacityRun> Run(IEnumerable<string> tasks, IEnumerable<string> methods, IEnumerable<int> capacities,
        string profile = "default", string? store = null, string protocol = "manyshot", long? seed = null,
        Action<string>? progress = null, CancellationToken cancel = default, string? checkpoint = null)
    {
        var caps = capacities.ToList();
        if (caps.Count == 0 || caps.Any(c => c < 1)) throw new ArgumentException($"capacities must be at least one positive width, got [{string.Join(", ", caps)}].", nameof(capacities));
        var plan = (from t in tasks
                    from m in methods
                    let key = KeyOf(m)
                    from c in key is null ? new int?[] { null } : caps.Select(c => (int?)c)
                    select (Task: t, Method: m, Key: key, Capacity: c)).ToList();
        var backbone = PeftFactory.BackboneFor(Study.CheckpointFor(checkpoint, "mini"), Vit.VitConfig.Preset("mini"));
        foreach (var p in plan.Where(p => p.Key is not null))
            Protocol.ValidateGrid(p.Method, new[] { Hp(p.Key!, p.Capacity!.Value) }, backbone); // e.g. a rank wider than the ViT fails here
        store ??= Path.Combine(Path.GetTempPath(), "peft-runs", Guid.NewGuid().ToString("N")[..12]);
        // An interrupted run says so on its line, as Study.RunAll's does.
        using var line = new Display.StoppableProgress(progress);
        return line.Each(plan, p => $"{p.Task} {p.Method}{(p.Capacity is int c ? $" {p.Key}={c}" : "")}",
            (p, step) => new CapacityRun(Study.Run(p.Task, p.Method, profile, hp: p.Key is null ? null : Hp(p.Key, p.Capacity!.Value), store: store,
                protocol: protocol, checkpoint: checkpoint, seed: seed, progressFor: line.Line is { } show ? cfg => new Display.NotebookProgress(show, $"{step.Text} {cfg.Phase}") : null,
                cancel: cancel), p.Capacity), cancel);
    }

    static Dictionary<string, string> Hp(string key, int capacity) => new() { [key] = capacity.ToString(System.Globalization.CultureInfo.InvariantCulture) };
}
