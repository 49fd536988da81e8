/* C accelerator for roost.protocol: XOR masking of WebSocket payloads (RFC 6455 section 5.3).
 * roost.protocol.frames falls back to a pure-Python version when this module is absent
 * or when ROOST_NO_EXTENSIONS=1 is set. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *
apply_mask(PyObject *self, PyObject *args)
{
    Py_buffer data, mask;
    if (!PyArg_ParseTuple(args, "y*y*:apply_mask", &data, &mask)) {
        return NULL;
    }
    if (mask.len != 4) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&mask);
        PyErr_SetString(PyExc_ValueError, "mask must be exactly 4 bytes");
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&mask);
        return NULL;
    }
    const unsigned char *src = (const unsigned char *)data.buf;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
    const unsigned char *m = (const unsigned char *)mask.buf;
    Py_ssize_t n = data.len;
    Py_ssize_t i = 0;
    uint64_t m8;
    unsigned char mb[8] = {m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]};
    memcpy(&m8, mb, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t chunk;
        memcpy(&chunk, src + i, 8);
        chunk ^= m8;
        memcpy(dst + i, &chunk, 8);
    }
    for (; i < n; i++) {
        dst[i] = src[i] ^ m[i & 3];
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS,
     "apply_mask(data, mask) -> bytes\n\nXOR data with the 4-byte mask, repeated."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "roost.protocol._speedups",
    "C accelerator for WebSocket masking.", -1, speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&speedups_module);
}
