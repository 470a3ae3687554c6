//! Route templates and span names shared between the requests of one layer.
//!
//! Every request needs its route (`/users/{id}`) as a shared string for the
//! `http.server.request.duration` attributes, and its span name (`GET /users/{id}`) for the
//! sampling decision and the span. Built per request, they cost two allocations and their
//! frees; route templates are few, so the layer keeps them, at most [`MAX_ROUTES`], and a
//! request only looks them up.
//!
//! ```text
//! let cache = RouteCache::default();
//! let (route, name) = cache.get(GET, "/users/{id}");   // built once
//! let (route, name) = cache.get(POST, "/users/{id}");  // route shared, name built once
//! ```

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// How many distinct routes a layer keeps; past that (a route extractor that returns raw
/// paths, say), names are built per request and memory stays bounded.
pub(crate) const MAX_ROUTES: usize = 1024;

use super::request_info::METHODS;

/// Route templates seen by one layer, with their span names per method. Hashed with
/// `foldhash` (randomly seeded, several times faster than SipHash on short keys; the map is
/// bounded, so hash flooding cannot grow it).
#[derive(Default)]
pub(crate) struct RouteCache {
    routes: RwLock<HashMap<Box<str>, Arc<Entry>, foldhash::fast::RandomState>>,
}

/// One route template and its span names, built the first time each method asks.
struct Entry {
    route: Arc<str>,
    names: [OnceLock<Arc<str>>; METHODS.len()],
}

impl RouteCache {
    /// The shared route string and the span name of the method at `method` (an index in
    /// [`METHODS`]) on `route`; `None` when the cache is full and `route` is not in it.
    pub(crate) fn get(&self, method: usize, route: &str) -> Option<(Arc<str>, Arc<str>)> {
        let entry = self.entry(route)?;
        let method = method.min(METHODS.len() - 1);
        let name = entry.names[method].get_or_init(|| {
            Arc::from(super::request_info::span_name(METHODS[method], Some(route)).as_str())
        });
        Some((entry.route.clone(), name.clone()))
    }

    fn entry(&self, route: &str) -> Option<Arc<Entry>> {
        // A poisoned lock only means another request panicked while inserting: the map is
        // still a valid map.
        if let Some(entry) = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(route)
        {
            return Some(entry.clone());
        }
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = routes.get(route) {
            return Some(entry.clone());
        }
        if routes.len() >= MAX_ROUTES {
            return None;
        }
        let entry = Arc::new(Entry {
            route: Arc::from(route),
            names: Default::default(),
        });
        routes.insert(Box::from(route), entry.clone());
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_routes_and_names_and_stays_bounded() {
        let cache = RouteCache::default();
        let (route, name) = cache.get(0, "/users/{id}").unwrap();
        assert_eq!((&*route, &*name), ("/users/{id}", "GET /users/{id}"));
        let (route2, name2) = cache.get(0, "/users/{id}").unwrap();
        assert!(Arc::ptr_eq(&route, &route2) && Arc::ptr_eq(&name, &name2));
        let (route3, name3) = cache.get(1, "/users/{id}").unwrap();
        assert!(Arc::ptr_eq(&route, &route3));
        assert_eq!(&*name3, "POST /users/{id}");
        // Unknown methods are named `HTTP`, as without the cache.
        assert_eq!(&*cache.get(9, "/x").unwrap().1, "HTTP /x");

        for i in 0..MAX_ROUTES {
            cache.get(0, &format!("/r{i}"));
        }
        assert!(cache.get(0, "/one-too-many").is_none());
        // Routes already kept are still served.
        assert!(cache.get(0, "/users/{id}").is_some());
    }
}
