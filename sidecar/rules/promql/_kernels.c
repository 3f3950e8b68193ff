/* The range functions whose cost grows with the window, in C: Prometheus 2.42's float
 * arithmetic operation by operation, as rangefuncs.py and regression.py do it in Python.
 *
 *   avg_over_time(vs, i, j) -> float              funcAvgOverTime's running mean
 *   sum_over_time(vs, i, j) -> float              funcSumOverTime's compensated sum
 *   stdvar_over_time(vs, i, j) -> float           funcStdvarOverTime
 *   linear_regression(ts, vs, i, j, t0) -> (slope, intercept)     linearRegression
 *   add_counter_resets(vs, i, j, result) -> float  extrapolatedRate's counter correction
 *
 * vs is an array('d') and ts an array('q') (any C-contiguous buffer of that format): the
 * store's own arrays, read in place over [i, j). The Python kernels stay the reference and
 * take every window that is not such a buffer (a subquery's list, say).
 *
 * Same bits as Go on amd64: IEEE doubles, each operation rounded on its own. The build
 * turns off floating-point contraction (-ffp-contract=off), so that no a*b+c becomes one
 * fused multiply-add on a target that has one; nothing here is built with -ffast-math.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>

/* kahanSumInc: Neumaier's variant, the branch on magnitudes making each compensation
 * term the exact rounding error of sum + inc. */
#define KAHAN_INC(inc, sum, c)                         \
    do {                                               \
        double kahan_t_ = (sum) + (inc);               \
        if (fabs(sum) >= fabs(inc)) {                  \
            (c) += ((sum) - kahan_t_) + (inc);         \
        } else {                                       \
            (c) += ((inc) - kahan_t_) + (sum);         \
        }                                              \
        (sum) = kahan_t_;                              \
    } while (0)

/* Read obj as a one-dimensional buffer of 8-byte items of the given struct format, and
 * check that [i, j) is a non-empty window of it. */
static int
open_window(PyObject *obj, char format, Py_ssize_t i, Py_ssize_t j, Py_buffer *view)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        return -1;
    }
    const char *fmt = view->format;
    if (fmt != NULL && (fmt[0] == '@' || fmt[0] == '=' || fmt[0] == '<')) {
        fmt++;
    }
    if (view->ndim != 1 || view->itemsize != 8 || fmt == NULL || fmt[0] != format ||
        fmt[1] != '\0') {
        PyErr_Format(PyExc_TypeError, "expected a buffer of format '%c' (an array('%c'))",
                     format, format);
        PyBuffer_Release(view);
        return -1;
    }
    Py_ssize_t len = view->len / 8;
    if (i < 0 || j > len || j <= i) {
        PyErr_Format(PyExc_IndexError, "window [%zd, %zd) is empty or not within the %zd items",
                     i, j, len);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* The kernels of one value window: vs[i:j] in, one double out. */

static double
avg_kernel(const double *vs, Py_ssize_t i, Py_ssize_t j)
{
    double mean = 0.0, c = 0.0, count = 0.0;
    for (Py_ssize_t k = i; k < j; k++) {
        double v = vs[k];
        count += 1.0;
        if (isinf(mean)) {
            if (isinf(v) && (mean > 0) == (v > 0)) {
                continue;
            }
            if (!isinf(v) && !isnan(v)) {
                continue;
            }
        }
        double inc = v / count - mean / count;
        KAHAN_INC(inc, mean, c);
    }
    return isinf(mean) ? mean : mean + c;
}

static double
sum_kernel(const double *vs, Py_ssize_t i, Py_ssize_t j)
{
    double sum = 0.0, c = 0.0;
    for (Py_ssize_t k = i; k < j; k++) {
        KAHAN_INC(vs[k], sum, c);
    }
    return isinf(sum) ? sum : sum + c;
}

static double
stdvar_kernel(const double *vs, Py_ssize_t i, Py_ssize_t j)
{
    double count = 0.0, mean = 0.0, c_mean = 0.0, aux = 0.0, c_aux = 0.0;
    for (Py_ssize_t k = i; k < j; k++) {
        double v = vs[k];
        count += 1.0;
        double delta = v - (mean + c_mean);
        double inc = delta / count;
        KAHAN_INC(inc, mean, c_mean);
        inc = delta * (v - (mean + c_mean));
        KAHAN_INC(inc, aux, c_aux);
    }
    return (aux + c_aux) / count;
}

/* Parse (vs, i, j) by the "Onn:name" format, run the kernel over vs[i:j], box its result. */
static PyObject *
over_values(PyObject *args, const char *format,
            double (*kernel)(const double *, Py_ssize_t, Py_ssize_t))
{
    PyObject *vs_obj;
    Py_ssize_t i, j;
    Py_buffer w;
    if (!PyArg_ParseTuple(args, format, &vs_obj, &i, &j) ||
        open_window(vs_obj, 'd', i, j, &w) < 0) {
        return NULL;
    }
    double out = kernel((const double *)w.buf, i, j);
    PyBuffer_Release(&w);
    return PyFloat_FromDouble(out);
}

static PyObject *
avg_over_time(PyObject *Py_UNUSED(module), PyObject *args)
{
    return over_values(args, "Onn:avg_over_time", avg_kernel);
}

static PyObject *
sum_over_time(PyObject *Py_UNUSED(module), PyObject *args)
{
    return over_values(args, "Onn:sum_over_time", sum_kernel);
}

static PyObject *
stdvar_over_time(PyObject *Py_UNUSED(module), PyObject *args)
{
    return over_values(args, "Onn:stdvar_over_time", stdvar_kernel);
}

static PyObject *
linear_regression(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *ts_obj, *vs_obj;
    Py_ssize_t i, j;
    long long t0_arg;
    Py_buffer wt, wv;
    if (!PyArg_ParseTuple(args, "OOnnL:linear_regression", &ts_obj, &vs_obj, &i, &j,
                          &t0_arg) ||
        open_window(ts_obj, 'q', i, j, &wt) < 0) {
        return NULL;
    }
    if (open_window(vs_obj, 'd', i, j, &wv) < 0) {
        PyBuffer_Release(&wt);
        return NULL;
    }
    const int64_t *ts = (const int64_t *)wt.buf;
    const double *vs = (const double *)wv.buf;
    const uint64_t t0 = (uint64_t)t0_arg;
    const double init_y = vs[i];
    int const_y = 1;
    double n = 0.0;
    double sum_x = 0.0, c_x = 0.0, sum_y = 0.0, c_y = 0.0;
    double sum_xy = 0.0, c_xy = 0.0, sum_x2 = 0.0, c_x2 = 0.0;
    for (Py_ssize_t k = i; k < j; k++) {
        double v = vs[k];
        if (const_y && k > i && v != init_y) {
            const_y = 0;
        }
        n += 1.0;
        /* float64(t - interceptTime) / 1e3, the int64 difference wrapping as Go's does. */
        double x = (double)(int64_t)((uint64_t)ts[k] - t0) / 1e3;
        double xy = x * v;
        double x2 = x * x;
        KAHAN_INC(x, sum_x, c_x);
        KAHAN_INC(v, sum_y, c_y);
        KAHAN_INC(xy, sum_xy, c_xy);
        KAHAN_INC(x2, sum_x2, c_x2);
    }
    PyBuffer_Release(&wt);
    PyBuffer_Release(&wv);
    double slope, intercept;
    if (const_y) {
        if (isinf(init_y)) {
            slope = intercept = NAN;
        } else {
            slope = 0.0;
            intercept = init_y;
        }
    } else {
        sum_x = sum_x + c_x;
        sum_y = sum_y + c_y;
        sum_xy = sum_xy + c_xy;
        sum_x2 = sum_x2 + c_x2;
        double cov_xy = sum_xy - sum_x * sum_y / n;
        double var_x = sum_x2 - sum_x * sum_x / n;
        slope = cov_xy / var_x;
        intercept = sum_y / n - slope * sum_x / n;
    }
    return Py_BuildValue("(dd)", slope, intercept);
}

static PyObject *
add_counter_resets(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *vs_obj;
    Py_ssize_t i, j;
    double result;
    Py_buffer w;
    if (!PyArg_ParseTuple(args, "Onnd:add_counter_resets", &vs_obj, &i, &j, &result) ||
        open_window(vs_obj, 'd', i, j, &w) < 0) {
        return NULL;
    }
    const double *vs = (const double *)w.buf;
    /* Each drop adds the value before it, one addition at a time in the window's order
     * (Go starts from 0, which adds only 0 for a first value below zero: no change). */
    double prev = vs[i];
    for (Py_ssize_t k = i + 1; k < j; k++) {
        double cur = vs[k];
        if (cur < prev) {
            result += prev;
        }
        prev = cur;
    }
    PyBuffer_Release(&w);
    return PyFloat_FromDouble(result);
}

static PyMethodDef kernel_methods[] = {
    {"avg_over_time", avg_over_time, METH_VARARGS,
     "avg_over_time(vs, i, j): Prometheus's running mean of vs[i:j]."},
    {"sum_over_time", sum_over_time, METH_VARARGS,
     "sum_over_time(vs, i, j): Prometheus's compensated sum of vs[i:j]."},
    {"stdvar_over_time", stdvar_over_time, METH_VARARGS,
     "stdvar_over_time(vs, i, j): Prometheus's population variance of vs[i:j]."},
    {"linear_regression", linear_regression, METH_VARARGS,
     "linear_regression(ts, vs, i, j, t0): Prometheus's least-squares slope and intercept "
     "(at t0, in milliseconds) of the samples ts[i:j], vs[i:j]."},
    {"add_counter_resets", add_counter_resets, METH_VARARGS,
     "add_counter_resets(vs, i, j, result): result plus the value before each drop in "
     "vs[i:j], as rate and increase correct a counter's resets."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef kernels_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_kernels",
    .m_doc = "Prometheus 2.42's range-function arithmetic over the store's arrays, in C.",
    .m_size = 0,
    .m_methods = kernel_methods,
};

PyMODINIT_FUNC
PyInit__kernels(void)
{
    return PyModuleDef_Init(&kernels_module);
}
