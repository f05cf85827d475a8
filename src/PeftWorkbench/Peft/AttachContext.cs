using PeftWorkbench.Training;
using PeftWorkbench.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Peft;

/// <summary>
/// State every wrapper of one attached method reads: the Strength (the study's "merge factor": 0 = the
/// pre-trained model, 1 = the fine-tuned one) and whether the method is merged into the backbone.
/// A plain object (not a module), so wrappers can share it without it appearing in state dicts.
/// </summary>
public sealed class PeftState
{
    public double Strength { get; internal set; } = 1;
    public bool Merged { get; internal set; }
}

/// <summary>A module that took a ViT slot; <see cref="Unwrap"/> gives back what it replaced (used by Detach).</summary>
public interface IPeftWrapper
{
    nn.Module<Tensor, Tensor> Unwrap();
}

/// <summary>A part of a method that can fold its delta (at a strength) into backbone tensors and restore them exactly.</summary>
public interface IMergeable
{
    void Merge(double strength);
    void Unmerge();
}

/// <summary>
/// Holds a reference that module registration must not see. TorchSharp registers every field whose value
/// is a module or tensor; a wrapper's view of the module it replaced, or of a module shared across
/// blocks, must not be registered twice, so such references live in a Ref.
/// </summary>
public sealed class Ref<T>(T value) where T : class
{
    public T Value { get; } = value;
}

/// <summary>Exact copies of tensors taken before a merge writes into them; Restore copies them back bit for bit.</summary>
public sealed class TensorBackup
{
    readonly List<(Tensor Target, Tensor Copy)> saved = new();

    public bool IsEmpty => saved.Count == 0;

    public void Save(Tensor target)
    {
        using var _ = torch.no_grad();
        // Detached from any dispose scope: the copy must outlive the scope a Merge runs in.
        saved.Add((target, target.DetachedClone().DetachFromDisposeScope()));
    }

    public void Restore()
    {
        using var _ = torch.no_grad();
        foreach (var (target, copy) in saved) { target.copy_(copy); copy.Dispose(); }
        saved.Clear();
    }
}

/// <summary>
/// The one attach mechanism. A method's Attach receives this context and does three kinds of things,
/// nothing else: replaces named ViT slots with wrappers (<see cref="Wrap{T}"/>, <see cref="WrapBlock{T}"/>;
/// the token hook for VPT is a block wrapper), registers method-level modules shared across blocks
/// (<see cref="Share"/>), and chooses backbone tensors that train (<see cref="Train"/>). Everything the
/// method creates trains; every other backbone tensor is frozen (requires_grad false); the head trains.
/// </summary>
public sealed class AttachContext
{
    internal AttachContext(VisionTransformer vit, PeftState state)
    {
        Vit = vit;
        State = state;
        Device = vit.cls_token.device;
        DType = vit.cls_token.dtype;
    }

    public VisionTransformer Vit { get; }
    public VitConfig Config => Vit.Config;
    public PeftState State { get; }
    public Device Device { get; }
    public ScalarType DType { get; }

    internal readonly List<Action> Undo = new();
    internal readonly List<Parameter> Selected = new();
    internal readonly List<(string Name, nn.Module Module)> Shared = new();

    public int Depth => Vit.blocks.Count;

    /// <summary>Block <paramref name="i"/> as the ViT built it (a method must not attach twice).</summary>
    public Block Block(int i) =>
        Vit.blocks[i] as Block ?? throw new InvalidOperationException($"blocks.{i} is a {Vit.blocks[i].GetType().Name}, not a plain Block: is a method already attached?");

    public Attention Attention(int i) =>
        Block(i).attn as Attention ?? throw new InvalidOperationException($"blocks.{i}.attn is a {Block(i).attn.GetType().Name}, not a plain Attention: is a method already attached?");

    public Mlp Mlp(int i) =>
        Block(i).mlp as Mlp ?? throw new InvalidOperationException($"blocks.{i}.mlp is a {Block(i).mlp.GetType().Name}, not a plain Mlp: is a method already attached?");

    /// <summary>Replaces slot <paramref name="slot"/> of <paramref name="parent"/> by <paramref name="wrap"/>(what is there now).</summary>
    public T Wrap<T>(nn.Module parent, string slot, Func<nn.Module<Tensor, Tensor>, T> wrap) where T : nn.Module<Tensor, Tensor>, IPeftWrapper
    {
        var current = Slots.Get(parent, slot);
        var wrapper = Place(wrap(current));
        Slots.Replace(parent, slot, wrapper);
        Undo.Add(() => Slots.Replace(parent, slot, wrapper.Unwrap()));
        return wrapper;
    }

    /// <summary>Replaces blocks[<paramref name="i"/>] (the token hook: VPT wraps whole blocks to add and drop tokens).</summary>
    public T WrapBlock<T>(int i, Func<Block, T> wrap) where T : nn.Module<Tensor, Tensor>, IPeftWrapper
    {
        var wrapper = Place(wrap(Block(i)));
        Slots.ReplaceAt(Vit.blocks, i, wrapper);
        Undo.Add(() => Slots.ReplaceAt(Vit.blocks, i, wrapper.Unwrap()));
        return wrapper;
    }

    /// <summary>Registers a module used by every block (FacT's shared factors) on the PeftModel under <paramref name="name"/>.</summary>
    public T Share<T>(string name, T module) where T : nn.Module
    {
        if (Shared.Any(s => s.Name == name)) throw new InvalidOperationException($"shared module '{name}' registered twice");
        Place(module);
        Shared.Add((name, module));
        return module;
    }

    /// <summary>Marks backbone tensors that train (BitFit's biases, LayerNorm's affines, Full FT's everything).</summary>
    public void Train(IEnumerable<Parameter> backboneTensors) => Selected.AddRange(backboneTensors);

    /// <summary>Named backbone parameters, the head excluded.</summary>
    public IEnumerable<(string Name, Parameter Param)> BackboneParameters() =>
        Vit.named_parameters().Where(p => !p.name.StartsWith("head.")).Select(p => (p.name, p.parameter));

    T Place<T>(T module) where T : nn.Module
    {
        // New tensors go where the backbone lives; tensors already there (the wrapped layer's) are not copied.
        if (DType != ScalarType.Float32) module.to(DType);
        if (Device.type != DeviceType.CPU) module.to(Device);
        return module;
    }
}
