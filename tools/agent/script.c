/*
 * script.c — --script FILE.lua: a Lua policy over the agent's events. The
 * script is a Lua chunk defining any of
 *
 *   function on_invite(invitation) ... end     -- an Invitation
 *   function on_refer(referral) ... end        -- a Referral
 *   function on_notify(referral, code, reason) ... end
 *
 * (as globals of its own environment, or as fields of a table it returns).
 * The objects are the Lua module's (require "sipreferral"), wrapping the
 * agent's own C objects: the agent exports the library's symbols, so the
 * module's calls land in this process's one copy of the library. A defined
 * on_invite / on_refer handles the event itself (it may also decide later)
 * unless it returns false: then the flags decide, so a script may only
 * look. on_notify is told of each response of a call that follows a REFER
 * (what its NOTIFY says). A script error is logged and the flags decide.
 * Handlers (on_*) set on these objects do not fire: the agent owns them.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

#ifndef SR_HAVE_LUA

int agent_script_load(agent *ag, const char *path, char *err, size_t errlen) {
  (void)ag;
  snprintf(err, errlen, "--script %s: this agent was built without Lua",
           path);
  return -1;
}
int agent_script_on_invite(agent *ag, sr_session *inv) {
  (void)ag;
  (void)inv;
  return 0;
}
int agent_script_on_refer(agent *ag, sr_referral *r) {
  (void)ag;
  (void)r;
  return 0;
}
void agent_script_on_notify(agent *ag, sr_referral *r, int code,
                            const char *reason) {
  (void)ag;
  (void)r;
  (void)code;
  (void)reason;
}
void agent_script_free(agent *ag) { (void)ag; }

#else

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

struct agent_script {
  lua_State *L;
  int on_invite, on_refer, on_notify; /* registry refs, or LUA_NOREF */
  int wrap_session, wrap_referral;    /* the module's wrappers */
};

/* The directory of this executable, where a build tree keeps lua/. */
static int exe_dir(char *out, size_t n) {
  ssize_t len = readlink("/proc/self/exe", out, n - 1);
  if (len <= 0) return -1;
  out[len] = '\0';
  char *slash = strrchr(out, '/');
  if (!slash) return -1;
  *slash = '\0';
  return 0;
}

/* package.path/cpath first look in BUILD/lua (next to the agent), then
 * where LUA_PATH/LUA_CPATH or the installed module say. */
static void add_build_paths(lua_State *L) {
  char dir[PATH_MAX], probe[PATH_MAX + 32];
  if (exe_dir(dir, sizeof dir - 32) < 0) return;
  snprintf(probe, sizeof probe, "%s/lua/sipreferral.lua", dir);
  if (access(probe, R_OK) != 0) return;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/lua/?.lua;%s", dir, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 1);
  lua_getfield(L, -1, "cpath");
  lua_pushfstring(L, "%s/lua/?.so;%s", dir, lua_tostring(L, -1));
  lua_setfield(L, -3, "cpath");
  lua_pop(L, 2);
}

/* require(name) then field (NULL: the module itself) into the registry. */
static int module_ref(lua_State *L, const char *name, const char *field,
                      int *ref) {
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) return -1;
  if (field) {
    lua_getfield(L, -1, field);
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1)) {
      lua_pop(L, 1);
      lua_pushfstring(L, "%s.%s is not a function", name, field);
      return -1;
    }
  }
  *ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* The function `name` from the script's table (at index t), or NOREF. */
static int script_fn(lua_State *L, int t, const char *name, char *err,
                     size_t errlen, const char *path) {
  int type = lua_getfield(L, t, name);
  if (type == LUA_TNIL) {
    lua_pop(L, 1);
    return LUA_NOREF;
  }
  if (type != LUA_TFUNCTION) {
    snprintf(err, errlen, "--script %s: %s is a %s, not a function", path,
             name, lua_typename(L, type));
    lua_pop(L, 1);
    return LUA_REFNIL; /* an error marker: never a valid function ref */
  }
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

int agent_script_load(agent *ag, const char *path, char *err, size_t errlen) {
  agent_script *s = calloc(1, sizeof *s);
  lua_State *L = s ? luaL_newstate() : NULL;
  if (!L) {
    free(s);
    snprintf(err, errlen, "--script %s: out of memory", path);
    return -1;
  }
  s->L = L;
  s->on_invite = s->on_refer = s->on_notify = LUA_NOREF;
  s->wrap_session = s->wrap_referral = LUA_NOREF;
  ag->script = s;
  luaL_openlibs(L);
  add_build_paths(L);
  const char *base = "sipreferral.base"; /* its object wrappers */
  int sr;
  if (module_ref(L, "sipreferral", NULL, &sr) < 0 ||
      module_ref(L, base, "wrap_session", &s->wrap_session) < 0 ||
      module_ref(L, base, "wrap_referral", &s->wrap_referral) < 0) {
    snprintf(err, errlen, "--script %s: cannot load the Lua module: %s", path,
             lua_tostring(L, -1));
    return -1;
  }
  luaL_unref(L, LUA_REGISTRYINDEX, sr);
  /* Generational, once the module is loaded (its tables become old): the
   * script's objects are mostly wrappers of one call's objects, dropped
   * within the call, which young collections free without traversing the
   * module each time (bench/PROFILE.md). The script may switch back. */
  lua_gc(L, LUA_GCGEN, 0, 0);
  /* The script's globals live in a table of their own over _G. */
  if (luaL_loadfilex(L, path, "t") != LUA_OK) {
    snprintf(err, errlen, "--script: %s", lua_tostring(L, -1));
    return -1;
  }
  lua_newtable(L); /* env */
  lua_newtable(L); /* its metatable */
  lua_pushglobaltable(L);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  if (!lua_setupvalue(L, -3, 1)) lua_pop(L, 1); /* the chunk's _ENV */
  lua_insert(L, -2); /* stack: env, chunk */
  int env = lua_gettop(L) - 1;
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    snprintf(err, errlen, "--script %s: %s", path, lua_tostring(L, -1));
    return -1;
  }
  int t = lua_istable(L, -1) ? lua_gettop(L) : env;
  s->on_invite = script_fn(L, t, "on_invite", err, errlen, path);
  s->on_refer = script_fn(L, t, "on_refer", err, errlen, path);
  s->on_notify = script_fn(L, t, "on_notify", err, errlen, path);
  lua_settop(L, 0);
  if (s->on_invite == LUA_REFNIL || s->on_refer == LUA_REFNIL ||
      s->on_notify == LUA_REFNIL)
    return -1;
  if (s->on_invite == LUA_NOREF && s->on_refer == LUA_NOREF &&
      s->on_notify == LUA_NOREF) {
    snprintf(err, errlen, "--script %s defines none of on_invite, on_refer, "
             "on_notify", path);
    return -1;
  }
  return 0;
}

/* Pushes the module's object for handle p (wrap = wrap_session or
 * wrap_referral). Returns 0, or -1 with the error message on the stack. */
static int push_object(lua_State *L, int wrap, void *p) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, wrap);
  lua_pushlightuserdata(L, p);
  return lua_pcall(L, 1, 1, 0) == LUA_OK ? 0 : -1;
}

/* Calls the script's fn with the object for p (and code, reason when code
 * is not 0). Returns 1 if the script handled the event. */
static int call(agent *ag, const char *name, int fn, int wrap, void *p,
                int code, const char *reason) {
  agent_script *s = ag->script;
  lua_State *L = s->L;
  int handled = 0, nargs = 1;
  if (fn == LUA_NOREF || !lua_checkstack(L, 8)) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, fn);
  if (push_object(L, wrap, p) == 0) {
    if (code) {
      lua_pushinteger(L, code);
      lua_pushstring(L, reason ? reason : "");
      nargs = 3;
    }
    if (lua_pcall(L, nargs, 1, 0) == LUA_OK) {
      handled = !(lua_isboolean(L, -1) && !lua_toboolean(L, -1));
      lua_pop(L, 1);
      return handled;
    }
  } else {
    lua_remove(L, -2); /* the function under the error */
  }
  const char *msg = lua_tostring(L, -1);
  if (!msg) msg = luaL_tolstring(L, -1, NULL);
  agent_log(ag, SR_LOG_ERROR, "--script %s failed: %s (the flags decide)",
            name, msg ? msg : "?");
  lua_settop(L, 0);
  return 0;
}

int agent_script_on_invite(agent *ag, sr_session *inv) {
  agent_script *s = ag->script;
  return call(ag, "on_invite", s->on_invite, s->wrap_session, inv, 0, NULL);
}

int agent_script_on_refer(agent *ag, sr_referral *r) {
  agent_script *s = ag->script;
  return call(ag, "on_refer", s->on_refer, s->wrap_referral, r, 0, NULL);
}

void agent_script_on_notify(agent *ag, sr_referral *r, int code,
                            const char *reason) {
  agent_script *s = ag->script;
  call(ag, "on_notify", s->on_notify, s->wrap_referral, r, code, reason);
}

void agent_script_free(agent *ag) {
  if (!ag->script) return;
  lua_close(ag->script->L); /* __gc drops the objects' references */
  free(ag->script);
  ag->script = NULL;
}

#endif
