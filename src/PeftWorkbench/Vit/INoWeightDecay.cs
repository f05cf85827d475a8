namespace PeftWorkbench.Vit;

/// <summary>
/// A module that names its own parameters that must not decay (timm's <c>no_weight_decay()</c>): those the
/// "no decay on 1-D tensors" rule misses, such as positions, class tokens and prompts. Names are relative to
/// the module; the trainer prefixes them with the module's place in the model.
/// </summary>
public interface INoWeightDecay
{
    IEnumerable<string> NoWeightDecay();
}
