using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Data;

/// <summary>
/// Images and labels held as tensors: Images [N, C, H, W] float32, already resized and normalised for the
/// model; Labels [N] int64 in [0, NumClasses). The unit every reader returns and the trainer consumes.
/// </summary>
public sealed record ImageSet(Tensor Images, Tensor Labels, int NumClasses, string Name) : IDisposable
{
    public long Count => Labels.shape[0];

    /// <summary>The subset at the given indices (a copy).</summary>
    public ImageSet Subset(long[] indices, string? name = null)
    {
        using var idx = torch.tensor(indices, ScalarType.Int64);
        return new ImageSet(Images.index_select(0, idx), Labels.index_select(0, idx), NumClasses, name ?? Name);
    }

    public void Dispose() { Images.Dispose(); Labels.Dispose(); }
}

/// <summary>
/// A task in the VTAB-1K protocol: tune on Train800, select on Val200, retrain on Train800Val200, report on Test.
/// Group is "natural", "specialized" or "structured", as in VTAB.
/// </summary>
public sealed record Vtab1kTask(string Name, string Group, ImageSet Train800, ImageSet Val200, ImageSet Train800Val200, ImageSet Test) : IDisposable
{
    public int NumClasses => Test.NumClasses;
    public void Dispose() { Train800.Dispose(); Val200.Dispose(); Train800Val200.Dispose(); Test.Dispose(); }
}
