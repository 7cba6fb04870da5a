// The test page: the unmodified `@convex-dev/auth` React client
// (ConvexAuthProvider, useAuthActions) with the `convex` React client,
// showing who the server says is signed in. The browser test drives it
// through `window.auth` and reads `#state`.

import React, { useEffect } from "react";
import { createRoot } from "react-dom/client";
import { ConvexReactClient, useConvexAuth, useQuery } from "convex/react";
import { ConvexAuthProvider, useAuthActions } from "@convex-dev/auth/react";
import { anyApi } from "convex/server";

const convex = new ConvexReactClient(window.CAPSTAN_URL, { verbose: false });

function State() {
  const actions = useAuthActions();
  const { isLoading, isAuthenticated } = useConvexAuth();
  const me = useQuery(anyApi.auth.whoami, {});
  useEffect(() => {
    window.auth = actions;
  }, [actions]);
  const state = { isLoading, isAuthenticated, me: me ?? null };
  return <pre id="state">{JSON.stringify(state)}</pre>;
}

createRoot(document.getElementById("root")).render(
  <ConvexAuthProvider client={convex}>
    <State />
  </ConvexAuthProvider>,
);
