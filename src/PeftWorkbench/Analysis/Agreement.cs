using Microsoft.Data.Analysis;

namespace PeftWorkbench.Analysis;

/// <summary>A square statistic over methods: Values[a, b] for Methods[a], Methods[b].</summary>
public sealed record MethodMatrix(string Statistic, IReadOnlyList<string> Methods, double[,] Values)
{
    public double this[string a, string b] => Values[Index(a), Index(b)];

    int Index(string m)
    {
        for (int i = 0; i < Methods.Count; i++) if (Methods[i] == m) return i;
        throw new ArgumentException($"'{m}' is not among the methods ({string.Join(", ", Methods)}).");
    }

    /// <summary>The same matrix with rows and columns in <paramref name="order"/> (indices into Methods).</summary>
    public MethodMatrix Reorder(IReadOnlyList<int> order)
    {
        var v = new double[order.Count, order.Count];
        for (int i = 0; i < order.Count; i++)
            for (int j = 0; j < order.Count; j++) v[i, j] = Values[order[i], order[j]];
        return this with { Methods = order.Select(i => Methods[i]).ToList(), Values = v };
    }

    /// <summary>Mean over the pairs a != b (NaN cells skipped; NaN when none is left): e.g. how often two methods agree on average.</summary>
    public double MeanOffDiagonal()
    {
        var cells = from i in Enumerable.Range(0, Methods.Count) from j in Enumerable.Range(0, Methods.Count)
                    where i != j && !double.IsNaN(Values[i, j]) select Values[i, j];
        return cells.DefaultIfEmpty(double.NaN).Average();
    }

    /// <summary>One row per method: a "method" column, then one column per method.</summary>
    public DataFrame ToDataFrame()
    {
        var cols = new List<DataFrameColumn> { new StringDataFrameColumn("method", Methods) };
        for (int j = 0; j < Methods.Count; j++)
            cols.Add(new PrimitiveDataFrameColumn<double>(Methods[j], Enumerable.Range(0, Methods.Count).Select(i => Values[i, j])));
        return new DataFrame(cols);
    }
}

/// <summary>
/// How alike two methods' predictions are (the study's prediction analysis): the share of samples with the same
/// predicted label; the overlap of their wrong predictions as a Jaccard index |W_a ∩ W_b| / |W_a ∪ W_b|; and the
/// conditional P(b wrong | a wrong) = |W_a ∩ W_b| / |W_a| (row a, column b). Undefined cases (no wrong samples)
/// are NaN. Methods can be ordered by average-linkage hierarchical clustering of the agreement.
/// </summary>
public static class Agreement
{
    public static MethodMatrix Identical(Predictions p) => Pairwise(p, "identical predictions (share)", (a, b) =>
    {
        int same = 0;
        for (int i = 0; i < a.Count; i++) if (a.Predicted[i] == b.Predicted[i]) same++;
        return a.Count == 0 ? double.NaN : (double)same / a.Count;
    });

    public static MethodMatrix WrongJaccard(Predictions p) => Pairwise(p, "Jaccard of wrong predictions", (a, b) =>
    {
        var (both, either, _) = WrongCounts(a, b);
        return either == 0 ? double.NaN : (double)both / either;
    });

    /// <summary>Row a, column b: P(b wrong | a wrong).</summary>
    public static MethodMatrix WrongGivenWrong(Predictions p) => Pairwise(p, "P(column wrong | row wrong)", (a, b) =>
    {
        var (both, _, aWrong) = WrongCounts(a, b);
        return aWrong == 0 ? double.NaN : (double)both / aWrong;
    });

    /// <summary>Every ordered pair (a != b) with the three statistics, long form.</summary>
    public static DataFrame Pairs(Predictions p)
    {
        var (id, jac, cond) = (Identical(p), WrongJaccard(p), WrongGivenWrong(p));
        var rows = from i in Enumerable.Range(0, p.Methods.Count) from j in Enumerable.Range(0, p.Methods.Count) where i != j select (i, j);
        var list = rows.ToList();
        return new DataFrame(
            new StringDataFrameColumn("task", list.Select(_ => p.Task)),
            new StringDataFrameColumn("a", list.Select(r => p.Methods[r.i].Method)),
            new StringDataFrameColumn("b", list.Select(r => p.Methods[r.j].Method)),
            new PrimitiveDataFrameColumn<double>("identical", list.Select(r => id.Values[r.i, r.j])),
            new PrimitiveDataFrameColumn<double>("wrong_jaccard", list.Select(r => jac.Values[r.i, r.j])),
            new PrimitiveDataFrameColumn<double>("p_b_wrong_given_a_wrong", list.Select(r => cond.Values[r.i, r.j])));
    }

    static (int Both, int Either, int AWrong) WrongCounts(MethodPredictions a, MethodPredictions b)
    {
        int both = 0, either = 0, aWrong = 0;
        for (int i = 0; i < a.Count; i++)
        {
            bool wa = !a.Correct[i], wb = !b.Correct[i];
            if (wa && wb) both++;
            if (wa || wb) either++;
            if (wa) aWrong++;
        }
        return (both, either, aWrong);
    }

    static MethodMatrix Pairwise(Predictions p, string name, Func<MethodPredictions, MethodPredictions, double> f)
    {
        int k = p.Methods.Count;
        var v = new double[k, k];
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) v[i, j] = f(p.Methods[i], p.Methods[j]);
        return new MethodMatrix(name, p.Names, v);
    }

    /// <summary>
    /// Leaf order of an average-linkage agglomerative clustering on distance 1 - similarity (symmetrised; NaN
    /// counts as distance 1): the two closest clusters merge first (ties: lower indices), the left cluster is
    /// the one holding the lower original index. Similar methods end up next to each other.
    /// </summary>
    public static IReadOnlyList<int> ClusterOrder(MethodMatrix similarity)
    {
        int k = similarity.Methods.Count;
        double D(int a, int b)
        {
            double s = (similarity.Values[a, b] + similarity.Values[b, a]) / 2;
            return double.IsNaN(s) ? 1 : 1 - s;
        }
        var clusters = Enumerable.Range(0, k).Select(i => new List<int> { i }).ToList();
        while (clusters.Count > 1)
        {
            (int A, int B, double D) best = (0, 1, double.PositiveInfinity);
            for (int a = 0; a < clusters.Count; a++)
                for (int b = a + 1; b < clusters.Count; b++)
                {
                    double d = clusters[a].SelectMany(x => clusters[b].Select(y => D(x, y))).Average();
                    if (d < best.D - 1e-12) best = (a, b, d);
                }
            var (left, right) = clusters[best.A].Min() <= clusters[best.B].Min() ? (clusters[best.A], clusters[best.B]) : (clusters[best.B], clusters[best.A]);
            clusters[best.A] = left.Concat(right).ToList();
            clusters.RemoveAt(best.B);
        }
        return clusters[0];
    }

    /// <summary>The matrix with methods in clustering order.</summary>
    public static MethodMatrix Clustered(MethodMatrix m) => m.Reorder(ClusterOrder(m));
}
