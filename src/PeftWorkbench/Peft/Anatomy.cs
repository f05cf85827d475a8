using Microsoft.Data.Analysis;
using PeftWorkbench.Analysis;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Peft;

/// <summary>
/// Where the methods put their trainable numbers, read from attached models (notebook 01): per slot of a timm ViT
/// block, and in all on the study's ViT-B/16 shape beside the counts the study published.
/// </summary>
public static class Anatomy
{
    /// <summary>The slots of a block in forward order (timm's names): what a method either chooses or wraps.</summary>
    public static IReadOnlyList<string> BlockSlots { get; } = new[] { "norm1", "attn.qkv", "attn.proj", "attn", "ls1", "norm2", "mlp.fc1", "mlp.fc2", "mlp", "ls2" };

    /// <summary>The columns of <see cref="SlotTable"/>: the block slots, then what sits in block 0 under no slot, then
    /// what trains outside the blocks without the head.</summary>
    public static IReadOnlyList<string> Columns { get; } = BlockSlots.Append("block, other").Append("outside").ToList();

    /// <summary>A parameter's place seen from block 0: one of <see cref="BlockSlots"/> (the longest that prefixes it, so
    /// attn.qkv wins over attn), "block, other", "other blocks", "head" or "outside".</summary>
    public static string SlotOf(string name)
    {
        if (name.StartsWith("blocks.0.", StringComparison.Ordinal))
            return BlockSlots.Where(s => name.StartsWith($"blocks.0.{s}.", StringComparison.Ordinal)).MaxBy(s => s.Length) ?? "block, other";
        return name.StartsWith("blocks.", StringComparison.Ordinal) ? "other blocks" : name.StartsWith("head", StringComparison.Ordinal) ? "head" : "outside";
    }

    /// <summary>Trainable numbers per place (<see cref="SlotOf"/>) of each method attached with its defaults to a fresh
    /// backbone from <paramref name="backbone"/>.</summary>
    public static IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> CountsBySlot(IEnumerable<string> methods, Func<VisionTransformer> backbone)
    {
        var counts = new Dictionary<string, IReadOnlyDictionary<string, long>>();
        foreach (var id in methods)
        {
            using var fresh = backbone();
            var model = Peft.Attach(fresh, id, seed: 0);
            counts[id] = model.TrainableParameters().GroupBy(p => SlotOf(p.Name)).ToDictionary(g => g.Key, g => g.Sum(p => p.Param.numel()));
        }
        return counts;
    }

    /// <summary>One row per method, one column per place in block 0 (<see cref="Columns"/>): trainable numbers, blank for none.</summary>
    public static DataFrame SlotTable(IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> counts)
    {
        string Cell(string id, string slot) => counts[id].TryGetValue(slot, out var n) ? n.ToString("N0", System.Globalization.CultureInfo.InvariantCulture) : "";
        return new DataFrame(new[] { (DataFrameColumn)new StringDataFrameColumn("method", counts.Keys) }
            .Concat(Columns.Select(s => new StringDataFrameColumn(s, counts.Keys.Select(id => Cell(id, s))))));
    }

    /// <summary>
    /// Each method attached to the <paramref name="preset"/> shape (random weights: a count needs only shapes) with the
    /// hyperparameters the study selected on <paramref name="task"/>, counted as the study counts (without the head),
    /// beside the study's published count: columns method, study hyperparameters, ours, paper, equal.
    /// </summary>
    public static DataFrame StudyCounts(string task = "cifar", string preset = "vit-b16")
    {
        var paper = Paper.Vtab1k();
        var rows = Enumerable.Range(0, (int)paper.Rows.Count).Where(i => (string)paper["task"][i] == task)
            .Select(i => (Method: (string)paper["method"][i], Hp: (string)paper["selected_hp"][i], Params: (long?)paper["trainable_params"][i])).ToList();
        if (rows.Count == 0)
            throw new ArgumentException($"The study has no row for task '{task}'. Its tasks: {string.Join(", ", Enumerable.Range(0, (int)paper.Rows.Count).Select(i => (string)paper["task"][i]).Distinct())}.", nameof(task));
        using var vit = new VisionTransformer(VitConfig.Preset(preset), seed: 0);
        var ours = new List<long>();
        foreach (var r in rows)
        {
            var model = Peft.Attach(vit, r.Method, MethodRegistry.ParseJson(r.Hp), seed: 0);
            ours.Add(model.TrainableParameterCountExcludingHead);
            model.Detach();
        }
        return new DataFrame(new StringDataFrameColumn("method", rows.Select(r => r.Method)),
            new StringDataFrameColumn($"study hyperparameters ({task})", rows.Select(r => r.Hp)),
            new PrimitiveDataFrameColumn<long>("ours", ours), new PrimitiveDataFrameColumn<long>("paper", rows.Select(r => r.Params)),
            new BooleanDataFrameColumn("equal", rows.Select((r, i) => ours[i] == r.Params)));
    }
}
