using System.Reflection;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Vit;

/// <summary>
/// Replaces a named child module ("slot") of a module: the C# field that forward() reads and the
/// registration that names its parameters in state dicts. TorchSharp's register_module refuses to
/// overwrite a registered name, so the registry entry is replaced directly. This is the one way
/// anything (a new head, every PEFT method) swaps a part of the ViT.
/// </summary>
public static class Slots
{
    static readonly FieldInfo Registry =
        typeof(nn.Module).GetField("_internal_submodules", BindingFlags.NonPublic | BindingFlags.Instance)
        ?? throw new MissingFieldException("TorchSharp.Module._internal_submodules (TorchSharp version changed?)");

    /// <summary>The module currently in slot <paramref name="name"/> of <paramref name="parent"/>.</summary>
    public static nn.Module<Tensor, Tensor> Get(nn.Module parent, string name) =>
        FieldOf(parent, name).GetValue(parent) as nn.Module<Tensor, Tensor>
        ?? throw new InvalidOperationException($"{parent.GetType().Name}.{name} is not a Tensor -> Tensor module");

    /// <summary>Puts <paramref name="module"/> into slot <paramref name="name"/>; returns what was there.</summary>
    public static nn.Module<Tensor, Tensor> Replace(nn.Module parent, string name, nn.Module<Tensor, Tensor> module)
    {
        var field = FieldOf(parent, name);
        var old = (nn.Module<Tensor, Tensor>)field.GetValue(parent)!;
        field.SetValue(parent, module);
        var registry = Registry.GetValue(parent)!;
        // OrderedDict<string, Module>'s string indexer keeps the entry's position, so state-dict order is stable.
        registry.GetType().GetProperty("Item", new[] { typeof(string) })!.SetValue(registry, module, new object[] { name });
        return old;
    }

    /// <summary>
    /// Puts <paramref name="module"/> at position <paramref name="index"/> of a ModuleList (e.g. blocks[i]); returns
    /// what was there. ModuleList's indexer setter only changes the list, not the registry that names parameters
    /// ("blocks.3.norm1.weight"), so both are updated here.
    /// </summary>
    public static nn.Module<Tensor, Tensor> ReplaceAt(TorchSharp.Modules.ModuleList<nn.Module<Tensor, Tensor>> list, int index, nn.Module<Tensor, Tensor> module)
    {
        if (index < 0 || index >= list.Count)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"ModuleList has {list.Count} entries");
        var old = list[index];
        list[index] = module;
        var registry = Registry.GetValue(list)!;
        registry.GetType().GetProperty("Item", new[] { typeof(string) })!.SetValue(registry, module, new object[] { index.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        return old;
    }

    static FieldInfo FieldOf(nn.Module parent, string name) =>
        parent.GetType().GetField(name, BindingFlags.Public | BindingFlags.Instance) is { } f
        && typeof(nn.Module<Tensor, Tensor>).IsAssignableFrom(f.FieldType)
            ? f
            : throw new ArgumentException($"{parent.GetType().Name} has no replaceable slot '{name}'");
}
