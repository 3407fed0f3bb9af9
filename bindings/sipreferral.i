/*
 * sipreferral.i — the one SWIG interface for both the Python and the Lua
 * module. The C API is wrapped as it is (module sipreferral_core); what
 * each language needs for callbacks lives in python.i / lua.i, and the
 * idiomatic classes are in python/sipreferral/ and lua/sipreferral.lua.
 */
%module sipreferral_core

%{
#include "sipreferral.h"
%}

/* Shared across both languages. */
%include "common.i"

#ifdef SWIGPYTHON
%include "python.i"
#endif
#ifdef SWIGLUA
%include "lua.i"
#endif

%include "sipreferral.h"
