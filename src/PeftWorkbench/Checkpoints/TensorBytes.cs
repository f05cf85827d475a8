using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Checkpoints;

/// <summary>
/// Moves raw bytes between a stream and a tensor's own memory, so that loads and saves never hold a second
/// copy of a tensor. Spans are limited to 2 GiB, so larger tensors go through views of at most that size.
/// </summary>
internal static class TensorBytes
{
    /// <summary>True when bytes of <paramref name="dtype"/> can be read straight into <paramref name="target"/>.</summary>
    public static bool Direct(Tensor target, ScalarType dtype) =>
        target.device_type == DeviceType.CPU && target.dtype == dtype && target.is_contiguous();

    /// <summary>Fills a contiguous CPU tensor from <paramref name="stream"/>; the count of bytes read (less than
    /// the tensor's size only when the stream ended first).</summary>
    public static long Fill(Stream stream, Tensor target, long maxSpan = int.MaxValue)
    {
        long total = 0;
        foreach (var piece in Pieces(target, maxSpan))
            using (piece)
            {
                var span = piece.bytes;
                int got = Npy.ReadUpTo(stream, span);
                total += got;
                if (got < span.Length) break;
            }
        return total;
    }

    /// <summary>Writes a contiguous CPU tensor's bytes to <paramref name="stream"/>.</summary>
    public static void Write(Stream stream, Tensor source, long maxSpan = int.MaxValue)
    {
        foreach (var piece in Pieces(source, maxSpan))
            using (piece)
            {
                var span = piece.bytes;
                for (int at = 0; at < span.Length; at += 1 << 20)
                    stream.Write(span.Slice(at, Math.Min(1 << 20, span.Length - at)));
            }
    }

    /// <summary>Views of a contiguous tensor, in order, each of at most <paramref name="maxSpan"/> bytes.</summary>
    static IEnumerable<Tensor> Pieces(Tensor t, long maxSpan)
    {
        if (!t.is_contiguous() || t.device_type != DeviceType.CPU) throw new ArgumentException("a contiguous CPU tensor is needed");
        long n = t.numel(), size = t.ElementSize;
        if (n == 0) yield break;
        if (n * size <= maxSpan) { yield return t.alias(); yield break; }
        long per = Math.Max(1, maxSpan / size);
        using var flat = t.view(-1);
        for (long at = 0; at < n; at += per) yield return flat.narrow(0, at, Math.Min(per, n - at));
    }

    /// <summary>Skips <paramref name="count"/> bytes of a stream that may not seek (a zip entry).</summary>
    public static long Skip(Stream stream, long count)
    {
        if (count <= 0) return 0;
        if (stream.CanSeek) { long can = Math.Min(count, stream.Length - stream.Position); stream.Seek(can, SeekOrigin.Current); return can; }
        var buffer = new byte[(int)Math.Min(count, 1 << 20)];
        long skipped = 0;
        while (skipped < count)
        {
            int n = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, count - skipped));
            if (n == 0) break;
            skipped += n;
        }
        return skipped;
    }
}
